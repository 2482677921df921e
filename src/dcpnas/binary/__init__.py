"""1-bit building blocks: quantizers (sign + STE), binary layers, reconstruction loss."""

from .layers import BinaryConv2d, binary_convs, set_binary_weights
from .quantizers import approx_sign, hard_sign, weight_sign
from .reconstruction import reconstruction_loss

__all__ = ["BinaryConv2d", "approx_sign", "binary_convs", "hard_sign", "reconstruction_loss",
           "set_binary_weights", "weight_sign"]

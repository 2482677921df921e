"""1-bit layers: a convolution with binary weights (and optionally binary input activations)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..kernels import conv2d
from ..utils.modules import modules_of_type
from .quantizers import approx_sign, weight_sign


class BinaryConv2d(nn.Conv2d):
    """Convolution with weights β∘sign(ŵ) (Eq. 4.22) and optionally sign-binarised inputs.

    ``weight`` holds the latent real weights ŵ; ``beta`` is a learnable per-output-channel scale,
    initialised to mean|ŵ| of its channel (the XNOR-Net optimum for a fixed ŵ).

    Two runtime switches serve the two-step recipe (docs/METHOD.md#decision-training): ``binary_weights=False``
    convolves with the real ŵ (step 1: binary activations, real weights); ``binary_activations``
    decides whether the input is binarised (the *binarisation scope* picks it per conv).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = False, *, binary_activations: bool = True,
                 binary_weights: bool = True):
        self.beta = None  # reset_parameters (called by nn.Conv2d.__init__) looks for it
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.beta = nn.Parameter(torch.empty(out_channels))
        self.binary_activations = binary_activations
        self.binary_weights = binary_weights
        self.reset_beta()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.beta is not None:
            self.reset_beta()

    @torch.no_grad()
    def reset_beta(self) -> None:
        """β ← mean|ŵ| per output channel."""
        self.beta.copy_(self.weight.abs().mean(dim=(1, 2, 3)))

    def effective_weight(self) -> torch.Tensor:
        """The weight the convolution uses: β∘sign(ŵ) when binary, ŵ otherwise."""
        if not self.binary_weights:
            return self.weight
        return self.beta.view(-1, 1, 1, 1) * weight_sign(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.binary_activations:
            x = approx_sign(x)
        return conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding,
                      self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (super().extra_repr()
                + f", binary_weights={self.binary_weights}, binary_activations={self.binary_activations}")


def binary_convs(module: nn.Module):
    """All BinaryConv2d layers of a module, in registration order (found once, ``modules_of_type``)."""
    return list(modules_of_type(module, BinaryConv2d))


def set_binary_weights(module: nn.Module, enabled: bool) -> None:
    """Switch every BinaryConv2d between binary weights (step 2) and real weights (step 1)."""
    for m in binary_convs(module):
        m.binary_weights = enabled

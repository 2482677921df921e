"""Metrics: cost accounting (parameters, MBits, FLOPs, BOPs, OPs)."""

from .profile import GroupCost, LayerCost, Profile, profile_genotype, profile_model

__all__ = ["GroupCost", "LayerCost", "Profile", "profile_genotype", "profile_model"]

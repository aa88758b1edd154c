"""Continuous positions and their Fourier features, shared by the router and the context.

Positions are normalised image coordinates in ``[0, 1]``, so a router trained at one
resolution sees the same features for the same place in an image of another size.
"""
import math

import torch

__all__ = ['fourier_features', 'pixel_centres']


def fourier_features(coords: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """Maps ``(..., d)`` coordinates in ``[0, 1]`` to ``(..., 2 * d * num_freqs)`` features.

    Frequencies are ``pi * 2**i`` for ``i < num_freqs``: the lowest has one half-period across
    the image, so every position in ``[0, 1]`` gets a distinct code.
    """
    freqs = math.pi * 2.0 ** torch.arange(num_freqs, device=coords.device, dtype=coords.dtype)
    angles = coords[..., None] * freqs                      # (..., d, f)
    feats = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (..., d, 2f)
    return feats.flatten(-2)


def pixel_centres(height: int, width: int, device=None) -> torch.Tensor:
    """``(height * width, 2)`` centres of a map's pixels as ``(x, y)`` in ``[0, 1]``, row-major.

    ``(x, y)`` order and pixel-centre placement are what mmcv's deformable attention expects
    of its reference points (with ``grid_sample``'s ``align_corners=False``).
    """
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)

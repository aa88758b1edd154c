"""The PCE router: a shared MLP that picks, per patch, ``k`` of ``e`` experts.

Legend: ``b`` batch, ``n`` patches per image, ``c`` content channels, ``f`` position
features, ``e`` experts, ``k`` experts kept per patch.
"""
from typing import NamedTuple, Optional

import torch
from mmengine.model import BaseModule
from torch import nn

from .position import fourier_features

__all__ = ['Routing', 'PatchRouter']


class Routing(NamedTuple):
    """What the router decided for every patch of a batch."""
    logits: torch.Tensor   # (b, n, e)
    probs: torch.Tensor    # (b, n, e) softmax over all experts
    weights: torch.Tensor  # (b, n, k) kept probabilities, renormalised to sum to 1
    indices: torch.Tensor  # (b, n, k) chosen experts


class PatchRouter(BaseModule):
    """Routes each patch by its content and its position.

    The content descriptor is the patch's mean feature (layer-normalised); the position is
    the Fourier code of the patch centre in ``[0, 1]`` image coordinates. One MLP, shared by
    all patches, maps both to logits over the experts; softmax, top-``k``, renormalise.

    Args:
        in_channels: channels of the content descriptor.
        num_experts: ``e``.
        top_k: experts kept per patch, ``1 <= k <= e``.
        num_freqs: Fourier frequencies per coordinate.
        hidden_channels: width of the MLP's hidden layer.
    """

    def __init__(self,
                 in_channels: int,
                 num_experts: int,
                 top_k: int,
                 num_freqs: int = 6,
                 hidden_channels: int = 64,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if not 1 <= top_k <= num_experts:
            raise ValueError(f'top_k must be in [1, num_experts={num_experts}], got {top_k}')
        self.num_experts = num_experts
        self.top_k = top_k
        self.num_freqs = num_freqs
        self.content_norm = nn.LayerNorm(in_channels)
        self.mlp = nn.Sequential(
            nn.Linear(in_channels + 4 * num_freqs, hidden_channels), nn.GELU(),
            nn.Linear(hidden_channels, num_experts))
        # Small logits at the start: routing begins close to uniform, so every expert gets
        # patches (and gradient) before the router has learnt anything.
        nn.init.normal_(self.mlp[-1].weight, std=0.01)
        nn.init.zeros_(self.mlp[-1].bias)

    def position_features(self, centres: torch.Tensor) -> torch.Tensor:
        """``(n, 2)`` patch centres in ``[0, 1]`` -> ``(n, f)``."""
        return fourier_features(centres, self.num_freqs)

    def logits(self, content: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """``(b, n, c)`` content and ``(n, 2)`` centres -> ``(b, n, e)`` logits."""
        pos = self.position_features(centres).to(content.dtype)
        pos = pos.expand(content.shape[0], -1, -1)                 # (b, n, f)
        return self.mlp(torch.cat([self.content_norm(content), pos], dim=-1))

    def forward(self, content: torch.Tensor, centres: torch.Tensor) -> Routing:
        logits = self.logits(content, centres)
        # Softmax in float32: under autocast, half-precision probabilities round small
        # experts' shares to zero and make the balance losses noisy.
        probs = logits.float().softmax(dim=-1)
        top, indices = probs.topk(self.top_k, dim=-1)              # (b, n, k)
        weights = top / top.sum(dim=-1, keepdim=True)
        return Routing(logits, probs, weights, indices)

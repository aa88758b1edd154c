"""Global context for a PCE block: mmcv's deformable attention over the map's tokens.

Legend: ``b`` batch, ``c`` channels, ``h, w`` map size, ``t = h * w`` tokens, ``f`` position
features.
"""
from typing import Optional

import torch
from mmcv.cnn import build_norm_layer
from mmcv.ops import MultiScaleDeformableAttention
from mmengine.model import BaseModule
from torch import nn

from .position import fourier_features, pixel_centres

__all__ = ['DeformableContext']


class DeformableContext(BaseModule):
    """Single-level ``MultiScaleDeformableAttention`` as a normalised residual branch.

    ``x + norm(attention(layernorm(x) + pos))``. Every pixel is a query whose reference
    point is its own centre; the query carries a learnt projection of the centre's Fourier
    features. The branch ends in ``norm_cfg`` (BatchNorm by default) as a ResNet branch
    ends in BN: that makes its projections scale-invariant, which keeps them stable under
    the SGD learning rates of mm's CNN schedules (docs/model.md, "Context"). mmcv runs its
    CUDA kernel on GPU tensors and its pure-PyTorch ``grid_sample`` path on CPU.

    Args:
        embed_dims: channels of the map.
        num_heads: attention heads; must divide ``embed_dims``.
        num_points: sampling points per head.
        value_proj_ratio: width of the value projection relative to ``embed_dims``. At 1.0
            (mmcv's default) the two projections cost ``2 * c**2`` per token, more than a
            whole block at ResNet-50's widths; 0.25 cuts that by four (the context's share
            of each preset's FLOPs: docs/performance.md).
        num_freqs: Fourier frequencies per coordinate of the positional encoding.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int = 8,
                 num_points: int = 4,
                 value_proj_ratio: float = 0.25,
                 num_freqs: int = 8,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'context num_heads={num_heads} must divide the block '
                             f'channels {embed_dims}')
        value_dims = int(embed_dims * value_proj_ratio)
        if value_dims < num_heads or value_dims % num_heads:
            raise ValueError(f'context value_proj_ratio={value_proj_ratio} gives {value_dims} '
                             f'value channels, which num_heads={num_heads} must divide')
        self.num_freqs = num_freqs
        self.query_norm = nn.LayerNorm(embed_dims)
        self.out_norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.pos_proj = nn.Linear(4 * num_freqs, embed_dims)
        self.attn = MultiScaleDeformableAttention(
            embed_dims=embed_dims, num_heads=num_heads, num_levels=1, num_points=num_points,
            dropout=0.0, batch_first=True, value_proj_ratio=value_proj_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)                          # (b, t, c)
        centres = pixel_centres(h, w, device=x.device)                 # (t, 2)
        # In the projection's dtype (a model in float64), then the tokens' (under autocast).
        features = fourier_features(centres, self.num_freqs).to(self.pos_proj.weight.dtype)
        pos = self.pos_proj(features).to(tokens.dtype)
        query = self.query_norm(tokens)
        delta = self.attn(
            query,
            value=query,
            identity=tokens.new_zeros(()),  # mmcv adds `identity`; the residual comes later
            query_pos=pos[None],
            reference_points=centres[None, :, None].expand(b, -1, -1, -1),  # (b, t, 1, 2)
            spatial_shapes=torch.tensor([[h, w]], device=x.device),
            level_start_index=torch.zeros(1, dtype=torch.long, device=x.device))
        return x + self.out_norm(delta.transpose(1, 2).reshape(b, c, h, w))

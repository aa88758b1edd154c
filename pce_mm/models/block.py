"""One PCE block: reduce -> route -> experts (dispatch) -> combine -> residual -> context.

Legend: ``b`` batch, ``c`` block channels, ``ce`` expert channels, ``h, w`` map size,
``n`` patches per image, ``k`` experts per patch.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint

from .context import DeformableContext
from .dispatch import DISPATCHERS, PatchGrid
from .experts import ConvExperts
from .router import PatchRouter, Routing

__all__ = ['PCEBlock']

WARMUP_EXPERTS = ('tied', 'all', 'random')


class PCEBlock(BaseModule):
    """A bottleneck block whose middle convolution is a routed bank of experts.

    ``x -> 1x1 reduce (c -> ce) -> router picks top-k experts per patch -> experts (k x k,
    ce -> ce) on their patches -> weighted sum -> 1x1 (ce -> c) + norm -> + x -> ReLU ->
    deformable attention (optional)``.

    Args:
        channels: input and output channels.
        expert_channels: width the experts work at (the bottleneck).
        num_experts: experts in the bank, ``e``.
        top_k: experts run per patch, ``k``.
        patch_size: side of a routed patch, in pixels of this block's map.
        expert_kernel: kernel size of each expert's convolution (odd).
        dispatch: ``'sparse'`` (only the chosen experts run) or ``'dense'`` (reference).
        warmup_experts: in the warm-up phase, ``'tied'``: the experts are one expert
            (expert 0, on the whole map) that becomes the others at the switch (see
            :meth:`tie_experts`); ``'all'``: each patch goes to every expert; ``'random'``:
            to a random subset of ``top_k``.
        warmup_combine: in the warm-up phase, the experts' outputs are averaged
            (``'mean'``) or summed (``'sum'``), without router weights.
        residual: add the input to the combined output.
        with_context: end with :class:`DeformableContext`.
        router_cfg: extra arguments of :class:`PatchRouter`.
        context_cfg: extra arguments of :class:`DeformableContext`.
        with_cp: in training, recompute the block's experts, combine and context in the
            backward pass instead of keeping their activations (the expert tiles above
            all): memory for time, as mm's ``with_cp``. The reduce and the router run
            once (the router's loss-free balancing step and the routing kept for the losses
            must happen once a step); BatchNorm statistics are updated twice, as with any
            checkpointed BatchNorm.
    """

    def __init__(self,
                 channels: int,
                 expert_channels: int,
                 num_experts: int = 8,
                 top_k: int = 2,
                 patch_size: int = 8,
                 expert_kernel: int = 3,
                 dispatch: str = 'sparse',
                 warmup_experts: str = 'all',
                 warmup_combine: str = 'mean',
                 residual: bool = True,
                 with_context: bool = False,
                 router_cfg: Optional[dict] = None,
                 context_cfg: Optional[dict] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 expert_norm_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if patch_size < 1:
            raise ValueError(f'patch_size must be >= 1, got {patch_size}')
        if dispatch not in DISPATCHERS:
            raise ValueError(f'dispatch must be one of {sorted(DISPATCHERS)}, got {dispatch!r}')
        if warmup_experts not in WARMUP_EXPERTS:
            raise ValueError(f'warmup_experts must be one of {WARMUP_EXPERTS}, '
                             f'got {warmup_experts!r}')
        if warmup_combine not in ('mean', 'sum'):
            raise ValueError(f"warmup_combine must be 'mean' or 'sum', got {warmup_combine!r}")
        self.patch_size = patch_size
        self.dispatch = dispatch
        self.warmup_experts = warmup_experts
        self.warmup_combine = warmup_combine
        self.last_routing: Optional[Routing] = None
        self.last_grid: Optional[PatchGrid] = None
        # Whether router logits, expert outputs and context output were finite (no sync).
        self.finite: Optional[torch.Tensor] = None
        self.residual = residual
        self.with_cp = with_cp
        self.reduce = ConvModule(channels, expert_channels, 1, conv_cfg=conv_cfg,
                                 norm_cfg=norm_cfg)
        self.router = PatchRouter(expert_channels, num_experts, top_k, **(router_cfg or {}))
        self.experts = ConvExperts(num_experts, expert_channels, expert_channels,
                                   expert_kernel, conv_cfg=conv_cfg,
                                   norm_cfg=expert_norm_cfg or norm_cfg)
        self.combine = ConvModule(expert_channels, channels, 1, conv_cfg=conv_cfg,
                                  norm_cfg=norm_cfg, act_cfg=None)
        self.context = DeformableContext(channels, **(context_cfg or {})) \
            if with_context else None

    @property
    def num_experts(self) -> int:
        return self.router.num_experts

    @property
    def top_k(self) -> int:
        return self.router.top_k

    def route(self, h: torch.Tensor, grid: PatchGrid) -> Routing:
        """Routing of every patch of ``h`` (``(b, ce, h, w)``) on ``grid``."""
        return self.router(grid.pool(h), grid.centres(h.device))

    def init_router(self, x: torch.Tensor, max_points: int, target_entropy: float = 0.5,
                    generator: Optional[torch.Generator] = None) -> dict:
        """Sets the router from the patches of this block's input ``x`` (``max_points`` of
        them at most; see :meth:`PatchRouter.init_from_data`); returns the fit's
        statistics."""
        h = self.reduce(x)
        grid = PatchGrid(h.shape[2], h.shape[3], self.patch_size)
        return self.router.init_from_data(grid.pool(h), grid.centres(h.device), target_entropy,
                                          max_points, generator)

    def warmup_experts_output(self, h: torch.Tensor, grid: PatchGrid) -> torch.Tensor:
        """Phase 1's expert output: ``(b, ce, h, w)``, no router."""
        halo = self.experts.halo
        if self.warmup_experts == 'tied':
            return self.experts.experts[0](F.pad(h, (halo, ) * 4))
        dispatch, indices, weights = self.warmup_assignment(h.shape[0], grid, h.device)
        return DISPATCHERS[dispatch](h, grid, self.experts, indices, weights, halo)

    def tie_experts(self) -> None:
        """The switch's upcycling: every expert becomes a copy of expert 0, which phase 1
        trained alone (``warmup_experts='tied'``). Identical experts and weights that sum to
        1 reproduce phase 1's output under any routing."""
        self.experts.tie_()

    def warmup_assignment(self, batch: int, grid: PatchGrid, device) -> tuple:
        """Phase 1's fixed assignment for ``'all'`` and ``'random'``: ``(dispatch name,
        indices, weights)``, ``(b, n, k)``."""
        e, k = self.num_experts, self.top_k
        if self.warmup_experts == 'all':
            # Every expert on every patch is every expert on the whole map: dense is exact
            # (with the halo) and cheaper than gathering each patch e times.
            indices = torch.arange(e, device=device).expand(batch, grid.num_patches, e)
            dispatch = 'dense'
        else:
            noise = torch.rand(batch, grid.num_patches, e, device=device)
            indices = noise.argsort(-1)[..., :k]
            dispatch = self.dispatch
        weight = 1.0 / indices.shape[-1] if self.warmup_combine == 'mean' else 1.0
        return dispatch, indices, torch.full(indices.shape, weight, device=device)

    def forward(self, x: torch.Tensor, warmup: bool = False) -> torch.Tensor:
        """``warmup``: phase 1, experts without router (see ``warmup_experts``) and no
        context. Otherwise the routing is kept in ``last_routing`` for the losses."""
        h = self.reduce(x)                                          # (b, ce, h, w)
        grid = PatchGrid(h.shape[2], h.shape[3], self.patch_size)
        self.last_grid = grid
        routing = None if warmup else self.route(h, grid)
        self.last_routing = routing
        indices, weights = (None, None) if warmup else (routing.indices, routing.weights)
        if self.with_cp and self.training and torch.is_grad_enabled():
            y, finite = checkpoint(self._experts_to_output, x, h, grid, indices, weights,
                                   warmup, use_reentrant=False)
        else:
            y, finite = self._experts_to_output(x, h, grid, indices, weights, warmup)
        routed_ok = finite.new_ones(()) if warmup else torch.isfinite(routing.logits).all()
        self.finite = torch.cat([routed_ok.view(1), finite])
        return y

    def _experts_to_output(self, x: torch.Tensor, h: torch.Tensor, grid: PatchGrid,
                           indices: Optional[torch.Tensor], weights: Optional[torch.Tensor],
                           warmup: bool) -> tuple:
        """Experts (routed, or phase 1's), combine, residual, context: the part that
        ``with_cp`` recomputes. Returns the output and whether the expert output (and the
        context's) were finite."""
        if warmup:
            y = self.warmup_experts_output(h, grid)
        else:
            y = DISPATCHERS[self.dispatch](h, grid, self.experts, indices, weights,
                                           self.experts.halo)
        checks = [torch.isfinite(y).all()]
        y = self.combine(y)                                         # (b, c, h, w)
        if self.residual:
            y = y + x
        y = y.relu()
        if self.context is not None and not warmup:
            y = self.context(y)
            checks.append(torch.isfinite(y).all())
        return y, torch.stack(checks)

"""The router's auxiliary losses, their logging, and how their gradient reaches the router.

Legend: ``b`` batch, ``n`` patches per image, ``e`` experts, ``k`` experts kept per patch.

The losses are attached to the backbone's output by :class:`AttachAuxLoss` (the mechanism
of Megatron-LM's ``MoEAuxLossAutoScaler``): an identity in the forward pass whose backward
also sends ``grad_scale`` as the gradient of the auxiliary loss. The task loss's backward
passes through the backbone's output, so the auxiliary loss reaches the optimizer for any
detector, segmentor or classifier without a change to its ``loss()``. ``grad_scale`` must be
the factor the training loop applies to the task loss (the fp16 loss scale, divided by the
gradient-accumulation count); :class:`~pce_mm.engine.RouterLossScaleHook` sets it.

The values go to mmengine's ``MessageHub`` once an iteration (one host read): the weighted
losses and, per stage ``s``, ``router_s<s>_entropy`` and ``router_s<s>_imbalance`` under
``train/``, which the ``LoggerHook`` writes to the text log and every visualizer backend;
each expert's share ``router_s<s>_load_e<i>`` under ``expert_load/``, which only
:class:`~pce_mm.engine.ExpertLoadHook` writes, to the visualizer backends (TensorBoard,
``vis_data/scalars.json``): ``E`` values a stage would make a text log line unreadable.
"""
import logging
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import MessageHub, print_log
from torch import Tensor

__all__ = ['router_entropy', 'load_balance', 'router_z_loss', 'expert_load', 'AttachAuxLoss',
           'RouterLosses', 'LOAD_PREFIX']

LOAD_PREFIX = 'expert_load/'


def router_entropy(probs: Tensor) -> Tensor:
    """Mean over patches of the entropy of each patch's routing distribution; low when
    the router is confident. ``(b, n, e) -> ()``."""
    return -(probs * probs.clamp_min(1e-9).log()).sum(-1).mean()


def expert_load(indices: Tensor, num_experts: int) -> Tensor:
    """Share of the routed assignments each expert received. ``(b, n, k) -> (e,)``."""
    counts = torch.bincount(indices.reshape(-1), minlength=num_experts)
    return counts.float() / indices.numel()


def load_balance(probs: Tensor, indices: Tensor) -> Tensor:
    """Switch Transformer's load-balancing loss, ``e * sum_i f_i * P_i``, with ``f_i`` the
    share of assignments expert ``i`` received (not differentiable) and ``P_i`` its mean
    routing probability. 1 when routing is uniform, up to ``e`` when one expert takes all."""
    num_experts = probs.shape[-1]
    share = expert_load(indices, num_experts)                       # (e,)
    return num_experts * (share * probs.reshape(-1, num_experts).mean(0)).sum()


def router_z_loss(logits: Tensor) -> Tensor:
    """ST-MoE's z-loss, the mean squared log-partition of the router logits: keeps them
    small, which keeps the softmax stable in low precision. ``(b, n, e) -> ()``."""
    return torch.logsumexp(logits.float(), dim=-1).square().mean()


class AttachAuxLoss(torch.autograd.Function):
    """``y = AttachAuxLoss.apply(x, aux_loss, grad_scale)`` returns ``x``; its backward
    passes ``x``'s gradient through and gives ``aux_loss`` the gradient ``grad_scale``, as
    if ``aux_loss`` had been added to the (scaled) task loss."""

    @staticmethod
    def forward(ctx, x: Tensor, aux_loss: Tensor, grad_scale: float) -> Tensor:
        ctx.save_for_backward(aux_loss)
        ctx.grad_scale = grad_scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        aux_loss, = ctx.saved_tensors
        return grad_output, torch.full_like(aux_loss, ctx.grad_scale), None


class RouterLosses:
    """The router losses of a backbone in phase 2, averaged over its blocks, weighted, and
    logged with per-stage routing statistics. Built from ``PCENet(loss_cfg=...)``.

    Args:
        entropy: weight of the per-patch routing entropy (confident choices).
        balance: weight of Switch Transformer's load-balancing loss.
        z: weight of ST-MoE's router z-loss (bounded logits, for low precision).
        log_expert_load: log each expert's share of the patches per stage (to the
            visualizer backends only, see the module's docstring).
    """

    def __init__(self, entropy: float = 0.01, balance: float = 0.01, z: float = 0.0,
                 log_expert_load: bool = True):
        self.weights = dict(entropy=entropy, balance=balance, z=z)
        if any(w < 0 for w in self.weights.values()):
            raise ValueError(f'loss_cfg weights must be >= 0, got {self.weights}')
        self.log_expert_load = log_expert_load
        self._warned_fp16 = False

    def __call__(self, stages: Sequence[Sequence]) -> Optional[Tensor]:
        """The weighted sum of the losses over ``stages`` (per stage, the
        :class:`~pce_mm.models.router.Routing` of each of its blocks), logged; ``None``
        when no weight is set or no block routed."""
        terms = {'entropy': [], 'balance': [], 'z': []}
        stats = {}
        for stage, routings in enumerate(stages, 1):
            if not routings:
                continue
            entropies = [router_entropy(r.probs) for r in routings]
            loads = torch.stack([expert_load(r.indices, r.probs.shape[-1]) for r in routings])
            terms['entropy'] += entropies
            terms['balance'] += [load_balance(r.probs, r.indices) for r in routings]
            if self.weights['z']:
                terms['z'] += [router_z_loss(r.logits) for r in routings]
            # Imbalance: the busiest expert's share over a uniform share (1 = balanced),
            # for the stage's most imbalanced block.
            stats[stage] = dict(entropy=torch.stack(entropies).mean(),
                                imbalance=loads.max(1).values.max() * loads.shape[1],
                                load=loads.mean(0))
        losses = {f'loss_router_{name}': self.weights[name] * torch.stack(values).mean()
                  for name, values in terms.items() if values and self.weights[name]}
        self._log(losses, stats)
        return sum(losses.values()) if losses else None

    def of_blocks(self, stages: Sequence[Sequence]) -> Optional[Tensor]:
        """:meth:`__call__` on the routings the blocks of each stage kept in their last
        forward, which they then drop: they hold the graph, which must not outlive the
        backward."""
        routings = []
        for blocks in stages:
            routings.append([b.last_routing for b in blocks if b.last_routing is not None])
            for b in blocks:
                b.last_routing = None
        return self(routings)

    def _log(self, losses: Dict[str, Tensor], stats: Dict[int, Dict[str, Tensor]]) -> None:
        names: List[str] = [f'train/{name}' for name in losses]
        values: List[Tensor] = [v.detach().float().reshape(1) for v in losses.values()]
        for stage, stat in stats.items():
            names += [f'train/router_s{stage}_entropy', f'train/router_s{stage}_imbalance']
            values += [stat['entropy'].detach().reshape(1), stat['imbalance'].reshape(1)]
            if self.log_expert_load:
                names += [f'{LOAD_PREFIX}router_s{stage}_load_e{i}'
                          for i in range(len(stat['load']))]
                values.append(stat['load'])
        if names:
            numbers = torch.cat([v.float() for v in values]).tolist()   # one host read
            MessageHub.get_current_instance().update_scalars(dict(zip(names, numbers)))

    def attach(self, x: Tensor, aux_loss: Tensor, scale: Optional[float]) -> Tensor:
        """``x`` carrying ``aux_loss`` (see :class:`AttachAuxLoss`) with the gradient factor
        ``scale`` the training loop applies to the task loss (``None``: 1, with a warning
        under fp16 autocast, where the loss scale would then be missed)."""
        if scale is None:
            if (not self._warned_fp16 and torch.is_autocast_enabled('cuda')
                    and torch.get_autocast_dtype('cuda') == torch.float16):
                self._warned_fp16 = True
                print_log('PCENet under fp16 autocast without RouterLossScaleHook: the router '
                          "losses miss the loss scale; add custom_hooks=[dict(type="
                          "'RouterLossScaleHook')]", logger='current', level=logging.WARNING)
            scale = 1.0
        return AttachAuxLoss.apply(x, aux_loss, scale)

"""The router's auxiliary losses and statistics, and how their gradient reaches the router.

Legend: ``b`` batch, ``n`` patches per image, ``e`` experts, ``k`` experts kept per patch.

The losses are attached to the backbone's output by :class:`AttachAuxLoss` (the mechanism
of Megatron-LM's ``MoEAuxLossAutoScaler``): an identity in the forward pass whose backward
also sends ``grad_scale`` as the gradient of the auxiliary loss. The task loss's backward
passes through the backbone's output, so the auxiliary loss reaches the optimizer for any
detector, segmentor or classifier without a change to its ``loss()``. ``grad_scale`` must be
the factor the training loop applies to the task loss (the fp16 loss scale, divided by the
gradient-accumulation count); :class:`~pce_mm.engine.RouterLossScaleHook` sets it.
"""
from typing import Dict

import torch
from torch import Tensor

__all__ = ['router_entropy', 'load_balance', 'router_z_loss', 'expert_load', 'AttachAuxLoss']


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


def weighted_aux_losses(terms: Dict[str, Tensor], weights: Dict[str, float]) -> Dict[str, Tensor]:
    """``{'loss_router_<name>': weight * term}`` for every term whose weight is not 0."""
    return {f'loss_router_{name}': weights[name] * value for name, value in terms.items()
            if weights.get(name, 0)}

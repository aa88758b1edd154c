"""Hooks of the PCE training recipe."""
import logging

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from ..models import PCENet
from ..registry import HOOKS

__all__ = ['RouterLossScaleHook']


@HOOKS.register_module()
class RouterLossScaleHook(Hook):
    """Tells every PCENet of the model the factor the optimizer wrapper applies to the task
    loss before ``backward``, so the router losses' gradient gets the same factor.

    That factor is ``loss_scale / accumulative_counts``: mmengine divides the loss by the
    gradient-accumulation count, and ``AmpOptimWrapper`` multiplies it by its ``GradScaler``'s
    scale (fp16; 1 without a scaler, as with bf16). The router losses reach the optimizer
    through the backbone's output (:class:`~pce_mm.models.losses.AttachAuxLoss`), not
    through the loss dict, so they would otherwise miss it. Without this hook the factor is
    1: right in fp32 and bf16 without accumulation.
    """
    priority = 'HIGH'

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, OptimWrapper):
            if batch_idx == 0:
                print_log('RouterLossScaleHook: several optimizer wrappers; the router losses '
                          'keep a gradient factor of 1', logger='current', level=logging.WARNING)
            return
        factor = float(wrapper.scale_loss(torch.ones(())))
        scaler = getattr(wrapper, 'loss_scaler', None)
        if scaler is not None:
            factor *= float(scaler.get_scale())
        for module in runner.model.modules():
            if isinstance(module, PCENet):
                module.aux_loss_scale = factor

"""Hooks of the PCE training recipe."""
import logging

import torch
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from ..models import PCENet
from ..models.losses import LOAD_PREFIX
from ..registry import HOOKS

__all__ = ['RouterLossScaleHook', 'ExpertLoadHook']


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


@HOOKS.register_module()
class ExpertLoadHook(Hook):
    """Writes each expert's share of the routed patches, ``router_s<s>_load_e<i>`` (which
    PCENet records every iteration, see :mod:`pce_mm.models.losses`), to the visualizer
    backends (TensorBoard, ``vis_data/scalars.json``) every ``interval`` iterations, as the
    mean over those iterations. They stay out of the text log: ``E`` values a stage.

    Args:
        interval: iterations between writes; ``None`` takes the ``LoggerHook``'s.
    """
    priority = 'BELOW_NORMAL'      # after the LoggerHook, as its lines come first

    def __init__(self, interval: int = None):
        self.interval = interval

    def before_train(self, runner) -> None:
        if self.interval is None:
            logger = next((h for h in runner.hooks if isinstance(h, LoggerHook)), None)
            self.interval = getattr(logger, 'interval', 50)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        scalars = runner.message_hub.log_scalars
        loads = {key[len(LOAD_PREFIX):]: float(buffer.mean(self.interval))
                 for key, buffer in scalars.items() if key.startswith(LOAD_PREFIX)}
        if loads:
            runner.visualizer.add_scalars(loads, step=runner.iter + 1)

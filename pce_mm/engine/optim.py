"""bfloat16 mixed precision on any device, CPU included."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ..registry import OPTIM_WRAPPERS

__all__ = ['BF16OptimWrapper']


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under bfloat16 autocast on the model's device.

    mmengine's ``AmpOptimWrapper`` refuses to build without a GPU, and CPU autocast only
    knows bfloat16; bfloat16 has float32's exponent range, so no loss scaling is needed.
    """

    @contextmanager
    def optim_context(self, model: nn.Module):
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device, dtype=torch.bfloat16):
            yield

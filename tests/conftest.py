import pytest
import torch

import pce_mm  # noqa: F401  (compat fixes and registration, as in real use)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def randomise_norm_stats():
    """Gives BatchNorm layers non-trivial running statistics and affine parameters, so
    eval-mode comparisons exercise normalisation instead of an identity."""

    def apply(module: torch.nn.Module) -> torch.nn.Module:
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.normal_()
                m.bias.data.normal_()
        return module

    return apply

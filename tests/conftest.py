import os

import pytest
import torch

import pce_mm  # noqa: F401  (compat fixes and registration, as in real use)


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs a worker per core), each worker and the tools
    it starts get their share of the cores: OpenMP threads beyond the cores spin and slow
    every worker down."""
    workers = os.environ.get('PYTEST_XDIST_WORKER_COUNT')
    if workers:
        threads = str(max(1, len(os.sched_getaffinity(0)) // int(workers)))
        torch.set_num_threads(int(threads))
        os.environ['OMP_NUM_THREADS'] = threads


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


@pytest.fixture(scope='session')
def voc_root(tmp_path_factory) -> str:
    """A tiny VOCdevkit (VOC2007 trainval/test, VOC2012 trainval/val) in the official
    layout, with boxes and segmentation masks."""
    from pce_mm.datasets.voc_demo import make_demo_voc
    root = str(tmp_path_factory.mktemp('VOCdevkit'))
    make_demo_voc(root, num_train=4, num_test=2, size=(96, 128), seed=0)
    return root

"""Each fix of pce_mm/compat.py: the problem is real, and the fix removes it."""
import os
import socket
import subprocess
import sys

import pytest
import torch


def run_python(code: str, env: dict = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_torchvision_cuda_wheel_fails_to_import_without_the_fix():
    result = run_python('import torchvision')
    assert result.returncode != 0
    assert 'torchvision::nms does not exist' in result.stderr


def test_torchvision_and_mmpretrain_transforms_import_after_pce_mm():
    result = run_python('import pce_mm, torchvision.transforms, mmpretrain.datasets.transforms;'
                        'from mmpretrain.models import ImageClassifier')
    assert result.returncode == 0, result.stderr


# What torchrun leaves to mmengine: its environment, then init_dist('pytorch'), which calls
# torch.cuda.set_device(LOCAL_RANK) before it starts the process group.
INIT_DIST = ("from mmengine.dist import init_dist, get_world_size, get_rank;"
             "init_dist('pytorch', backend='gloo');"
             "print('world', get_world_size(), 'rank', get_rank())")


@pytest.mark.skipif(torch.cuda.is_available(), reason='the fix applies to CPU-only torch')
def test_cuda_set_device_is_a_noop_without_cuda_so_mmengine_starts_under_torchrun():
    env = dict(os.environ, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    without = run_python('import torch;' + INIT_DIST, env)
    assert without.returncode != 0
    assert 'set_device' in without.stderr                   # the problem: CUDA-only call
    env['MASTER_PORT'] = str(free_port())
    fixed = run_python('import pce_mm;' + INIT_DIST, env)
    assert fixed.returncode == 0, fixed.stderr
    assert 'world 1 rank 0' in fixed.stdout
    # In this process too (pce_mm is imported by conftest): no error, nothing selected.
    assert torch.cuda.set_device(0) is None
    assert not torch.cuda.is_available()

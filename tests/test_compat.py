"""Each fix of pce_mm/compat.py: the problem is real, and the fix removes it."""
import subprocess
import sys

import pytest
import torch


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)


def test_torchvision_cuda_wheel_fails_to_import_without_the_fix():
    result = run_python('import torchvision')
    assert result.returncode != 0
    assert 'torchvision::nms does not exist' in result.stderr


def test_torchvision_and_mmpretrain_transforms_import_after_pce_mm():
    result = run_python('import pce_mm, torchvision.transforms, mmpretrain.datasets.transforms;'
                        'from mmpretrain.models import ImageClassifier')
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='the fix applies to CPU-only torch')
def test_cuda_set_device_is_a_noop_without_cuda():
    torch.cuda.set_device(0)                                # mmengine calls this under torchrun

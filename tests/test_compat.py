"""Each fix of pce_mm/compat.py: the problem is real, and the fix removes it."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader, save_checkpoint


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


def test_mmengine_checkpoint_with_history_buffers_loads(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    checkpoint = {'state_dict': {'w': torch.ones(2)},
                  'message_hub': {'log_scalars': {'loss': HistoryBuffer([1.0, 2.0], [1, 1])}},
                  'meta': {'lr': np.float64(0.1)}}
    save_checkpoint(checkpoint, path)
    with pytest.raises(Exception, match='weights_only'):
        torch.load(path)                                    # torch >= 2.6's default
    loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert loaded['message_hub']['log_scalars']['loss'].current() == 2.0


@pytest.mark.skipif(torch.cuda.is_available(), reason='the fix applies to CPU-only torch')
def test_cuda_set_device_is_a_noop_without_cuda():
    torch.cuda.set_device(0)                                # mmengine calls this under torchrun

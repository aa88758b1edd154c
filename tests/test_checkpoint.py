"""pce_mm/checkpoint.py: mmengine's checkpoints load with weights_only=True; a pickle that
would call anything else is refused before it runs, unless the file is trusted."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader, save_checkpoint

from pce_mm.checkpoint import TRUST_ENV, UnsafeCheckpointError


class MakesADirectory:
    """What a malicious checkpoint holds: unpickling it calls os.mkdir."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path, )


class FetchesBuiltins:
    """getattr(getattr, '__self__') is the builtins module, a step from eval."""

    def __reduce__(self):
        return getattr, (getattr, '__self__')


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    loss = HistoryBuffer([1.0, 2.0], [1, 1])
    checkpoint = {'state_dict': {'w': torch.ones(2)},
                  'message_hub': {'log_scalars': {'loss': loss}},
                  'meta': {'lr': np.float64(0.1), 'seeds': np.arange(3)}}
    save_checkpoint(checkpoint, path)
    with pytest.raises(Exception, match='weights_only'):
        torch.load(path)                                    # torch >= 2.6's default
    loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    buffer = loaded['message_hub']['log_scalars']['loss']
    assert buffer.current() == 2.0 and buffer.mean() == 1.5
    assert loaded['meta']['lr'] == 0.1
    np.testing.assert_array_equal(loaded['meta']['seeds'], np.arange(3))


def test_checkpoint_whose_pickle_calls_a_function_is_refused(tmp_path, monkeypatch):
    path, target = str(tmp_path / 'evil.pth'), str(tmp_path / 'created_by_the_pickle')
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': MakesADirectory(target)}, path)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UnsafeCheckpointError) as error:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    message = str(error.value)
    assert path in message and 'posix.mkdir' in message and TRUST_ENV in message
    assert not osp.exists(target)
    # The payload is real: listed as trusted, the same file runs it.
    monkeypatch.setenv(TRUST_ENV, os.pathsep.join([str(tmp_path / 'other.pth'), path]))
    CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert osp.isdir(target)


def test_getattr_reaches_nothing_but_history_buffer_methods(tmp_path, monkeypatch):
    path = str(tmp_path / 'builtins.pth')
    torch.save({'meta': FetchesBuiltins()}, path)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UnsafeCheckpointError, match='HistoryBuffer') as error:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert path in str(error.value)

"""tools/test.py and tools/train.py options, run in this process on tiny digits files:
``--split``, ``--out --out-item metrics``, ``--show-dir`` and ``--resume CKPT``.

The checkpoints of the test tool's tests are made, not trained: their head predicts one
class whatever the image, and every training digit has one label, every test digit
another, so each split's accuracy under each checkpoint is known exactly (100 or 0)."""
import glob
import itertools
import json
import os
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest
import torch
from helpers import load_tool, narrow_pce_config
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from pce_mm.datasets.digits import write_idx

TRAIN_LABEL, TEST_LABEL = 3, 5
NUM_TRAIN, NUM_TEST = 10, 4           # the digits config holds out a fifth: 2 to validate
_calls = itertools.count()


@pytest.fixture(scope='module')
def digits(tmp_path_factory) -> dict:
    """Digits files whose training images are all TRAIN_LABEL and test images TEST_LABEL,
    a narrow PCE config of configs/pce_digits.py, and a checkpoint predicting each label."""
    root = tmp_path_factory.mktemp('digits')
    (root / 'data').mkdir()
    rng = np.random.default_rng(0)
    for prefix, n, label in (('train', NUM_TRAIN, TRAIN_LABEL), ('t10k', NUM_TEST, TEST_LABEL)):
        write_idx(str(root / 'data' / f'{prefix}-images-idx3-ubyte'),
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(str(root / 'data' / f'{prefix}-labels-idx1-ubyte'),
                  np.full(n, label, dtype=np.uint8))
    config = narrow_pce_config(str(root / 'pce_digits_narrow.py'), 'pce_digits')
    cfg = Config.fromfile(config)
    init_default_scope('mmpretrain')
    checkpoints = {}
    for label in (TRAIN_LABEL, TEST_LABEL):
        model = MODELS.build(cfg.model)
        with torch.no_grad():
            model.head.fc.weight.zero_()
            model.head.fc.bias.zero_()
            model.head.fc.bias[label] = 10.0
        checkpoints[label] = str(root / f'predicts_{label}.pth')
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoints[label])
    return dict(root=str(root / 'data'), config=config, checkpoints=checkpoints)


def run_tool(monkeypatch, tool: str, *args: str, data_root: str, options=()) -> None:
    """``tools/<tool>`` with ``args`` and ``--cfg-options`` ``options`` as its command line,
    in this process, on the digits files; a Runner name of its own, as a test's Runners
    must have."""
    name = f'tool_{next(_calls)}'
    options = [f'data_root={data_root}', f'experiment_name={name}', f'visualizer.name={name}',
               *options]
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.num_workers=0',
                    f'{split}_dataloader.persistent_workers=False']
    monkeypatch.setattr(sys, 'argv', [tool, *args, '--cfg-options', *options])
    monkeypatch.setenv('LOCAL_RANK', '0')
    load_tool(tool).main()


@pytest.mark.parametrize('label, split, top1', [
    (TRAIN_LABEL, 'val', 100.0),      # the held-out training digits: all TRAIN_LABEL
    (TRAIN_LABEL, None, 0.0),         # the default split: the test digits
    (TEST_LABEL, None, 100.0),
    (TEST_LABEL, 'val', 0.0),
])
def test_test_tool_evaluates_the_given_checkpoint_on_the_chosen_split_and_dumps_metrics(
        digits, tmp_path, monkeypatch, label, split, top1):
    out = str(tmp_path / 'metrics.json')
    args = [digits['config'], digits['checkpoints'][label], '--work-dir', str(tmp_path),
            '--out', out, '--out-item', 'metrics']
    run_tool(monkeypatch, 'tools/test.py', *args, *(['--split', split] if split else []),
             data_root=digits['root'])
    with open(out) as f:
        assert json.load(f) == {'accuracy/top1': top1}


def test_test_tool_show_dir_draws_every_test_image(digits, tmp_path, monkeypatch):
    show = tmp_path / 'shown'
    run_tool(monkeypatch, 'tools/test.py', digits['config'], digits['checkpoints'][TEST_LABEL],
             '--work-dir', str(tmp_path / 'work'), '--show-dir', str(show),
             data_root=digits['root'])
    # mmpretrain names a drawing after its sample (digits have no file) and the step.
    assert sorted(os.listdir(show)) == [f'{i}_0.png' for i in range(NUM_TEST)]
    drawn = [cv2.imread(str(show / f'{i}_0.png')) for i in range(NUM_TEST)]
    assert all(image is not None and image.shape[0] >= 28 for image in drawn)
    assert not np.array_equal(drawn[0], drawn[1])        # each its own digit


def test_train_tool_resume_from_a_named_checkpoint_not_the_latest(digits, tmp_path,
                                                                  monkeypatch):
    work = str(tmp_path)
    train = ['tools/train.py', digits['config'], '--work-dir', work]
    options = dict(data_root=digits['root'], options=['train_cfg.max_epochs=3'])
    run_tool(monkeypatch, *train, **options)         # one iteration an epoch
    assert osp.exists(osp.join(work, 'epoch_3.pth'))
    first = sorted(glob.glob(osp.join(work, '*', '*.log')))
    run_tool(monkeypatch, *train, '--resume', osp.join(work, 'epoch_1.pth'), **options)
    log_path, = set(glob.glob(osp.join(work, '*', '*.log'))) - set(first)
    log = open(log_path).read()
    assert re.search(r'resumed epoch: 1, iter: \d+', log)
    assert 'Epoch(train) [1]' not in log
    assert re.search(r'Epoch\(train\) \[2\]', log) and re.search(r'Epoch\(train\) \[3\]', log)

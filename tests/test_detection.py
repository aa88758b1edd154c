"""Detection end to end: the Faster R-CNN VOC twins, mmdet's own config with PCENet swapped
in, and tools/train.py + tools/test.py on tiny official-format VOC files."""
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import mmdet
import pytest
from mmengine.config import Config
from mmengine.fileio import load
from mmengine.runner import Runner

from pce_mm.models import PCENet
from pce_mm.utils import merge_cli_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SIZE = (128, 96)


def tiny_options(voc_root: str, work_dir: str) -> dict:
    """Tiny data, tiny images, two iterations: the same keys `make demo` overrides."""
    return {
        'data_root': voc_root + '/',
        'train_dataloader.dataset.times': 1,
        'train_dataloader.dataset.dataset.datasets.0.pipeline.2.scale': SIZE,
        'train_dataloader.dataset.dataset.datasets.1.pipeline.2.scale': SIZE,
        'val_dataloader.dataset.pipeline.1.scale': SIZE,
        'test_dataloader.dataset.pipeline.1.scale': SIZE,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
        'train_cfg.max_epochs': 1,
        'work_dir': work_dir,
    }


def cli(options: dict) -> list:
    return ['--cfg-options'] + [f'{k}={v}'.replace(' ', '') for k, v in options.items()]


def test_twins_differ_only_in_backbone():
    pce = Config.fromfile(osp.join(REPO, 'configs/pce_frcnn_voc.py')).to_dict()
    res = Config.fromfile(osp.join(REPO, 'configs/resnet_frcnn_voc.py')).to_dict()
    assert pce['model'].pop('backbone')['type'] == 'PCENet'
    assert res['model'].pop('backbone')['type'] == 'ResNet'
    assert pce == res
    assert pce['val_evaluator']['type'] == 'VOCMetric'


@pytest.mark.parametrize('name', ['pce_frcnn_voc', 'resnet_frcnn_voc'])
def test_detection_configs_build(name):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, f'configs/{name}.py'))
    model = MODELS.build(cfg.model)
    assert model.neck.in_channels == [256, 512, 1024, 2048]


def test_mmdet_own_voc_config_takes_pcenet_as_a_drop_in(voc_root, tmp_path):
    mmdet_cfg = osp.join(osp.dirname(mmdet.__file__),
                         '.mim/configs/pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py')
    cfg = Config.fromfile(mmdet_cfg)
    cfg.model.backbone = dict(type='PCENet', arch='r50', phase_cfg=dict(warmup_iters=1))
    cfg.custom_imports = dict(imports=['pce_mm'], allow_failed_imports=False)
    merge_cli_options(cfg, dict(tiny_options(voc_root, str(tmp_path)),
                                **{'train_cfg.max_iters': 2}))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.model.backbone, PCENet)
    runner.train()                      # phase 1, the switch, phase 2, then VOCMetric
    assert runner.model.backbone.switched and runner.model.backbone.last_phase == 2
    metrics = runner.val_loop.run()
    assert 0 <= metrics['pascal_voc/mAP'] <= 1


@pytest.fixture(scope='module')
def trained(voc_root, tmp_path_factory):
    """``trained(name)``: the work dir of one epoch of ``configs/{name}.py`` through
    tools/train.py, trained once for the tests of this module that need it."""
    work_dirs = {}

    def train(name: str) -> str:
        if name not in work_dirs:
            work = str(tmp_path_factory.mktemp(name))
            run = subprocess.run(
                [sys.executable, 'tools/train.py', f'configs/{name}.py']
                + cli(tiny_options(voc_root, work)), cwd=REPO, capture_output=True, text=True)
            assert run.returncode == 0, run.stderr[-3000:]
            assert 'loss_rpn_cls' in run.stdout + run.stderr
            work_dirs[name] = work
        return work_dirs[name]

    return train


@pytest.mark.parametrize('name', ['pce_frcnn_voc', 'resnet_frcnn_voc'])
def test_train_then_test_tools_report_voc_map_and_draw_every_test_image(
        name, voc_root, trained, tmp_path):
    work = trained(name)
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.exists(ckpt)
    out, show = str(tmp_path / 'results.pkl'), str(tmp_path / 'shown')
    test = subprocess.run(
        [sys.executable, 'tools/test.py', f'configs/{name}.py', ckpt, '--out', out,
         '--show-dir', show] + cli(tiny_options(voc_root, str(tmp_path))), cwd=REPO,
        capture_output=True, text=True)
    assert test.returncode == 0, test.stderr[-3000:]
    log = test.stdout + test.stderr
    assert '| mAP' in log
    assert 0 <= float(re.search(r'pascal_voc/mAP: ([-\d.]+)', log).group(1)) <= 1
    # The VOC2007 test images, each once: predicted (--out) and drawn at its own size
    # (mmdet draws the ground truth and the prediction side by side).
    ids = open(osp.join(voc_root, 'VOC2007/ImageSets/Main/test.txt')).read().split()
    assert [result['img_id'] for result in load(out)] == ids
    assert sorted(os.listdir(show)) == sorted(f'{i}.jpg' for i in ids)
    for image_id in ids:
        drawn = cv2.imread(osp.join(show, f'{image_id}.jpg'))
        original = cv2.imread(osp.join(voc_root, 'VOC2007/JPEGImages', f'{image_id}.jpg'))
        height, width, channels = original.shape
        assert drawn.shape == (height, 2 * width, channels)


def test_resume_continues_from_the_saved_epoch(voc_root, trained):
    work = trained('pce_frcnn_voc')                  # epoch 1 done (tools/train.py)
    options = dict(tiny_options(voc_root, work), **{'train_cfg.max_epochs': 2})
    run = subprocess.run(
        [sys.executable, 'tools/train.py', 'configs/pce_frcnn_voc.py', '--resume']
        + cli(options), cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert 'resumed epoch: 1' in log
    assert 'Epoch(train) [1]' not in log and osp.exists(osp.join(work, 'epoch_2.pth'))

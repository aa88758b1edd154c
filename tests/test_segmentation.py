"""Segmentation: the UperNet VOC twins, and mmseg's own UperNet VOC config with PCENet
swapped in, on tiny official-format VOC files through a real Runner."""
import os.path as osp
import shutil

import mmseg
import numpy as np
import pytest
from helpers import REPO, build_runner, load_config
from mmengine.config import Config
from mmengine.evaluator import DumpResults
from mmengine.fileio import load
from PIL import Image

from pce_mm.models import PCENet
from pce_mm.datasets.synthetic import write_voc_aug
from pce_mm.utils import merge_cli_options

CROP = (64, 64)


def tiny_options(voc2012: str) -> dict:
    """Small crops and two iterations: what a CPU test can afford."""
    return {
        'data_root': voc2012,
        'model.data_preprocessor.size': CROP,
        'train_dataloader.batch_size': 2,
        'train_dataloader.dataset.datasets.0.pipeline.2.scale': (256, 64),
        'train_dataloader.dataset.datasets.0.pipeline.3.crop_size': CROP,
        'train_dataloader.dataset.datasets.0.pipeline.6.size': CROP,
        'train_dataloader.dataset.datasets.1.pipeline.2.scale': (256, 64),
        'train_dataloader.dataset.datasets.1.pipeline.3.crop_size': CROP,
        'train_dataloader.dataset.datasets.1.pipeline.6.size': CROP,
        'val_dataloader.dataset.pipeline.1.scale': (256, 64),
        'test_dataloader.dataset.pipeline.1.scale': (256, 64),
        'train_cfg.max_iters': 2,
        'train_cfg.val_interval': 2,
        'default_hooks.logger.interval': 1,
    }


def miou_of_dumped(dumped: str, voc2012: str) -> float:
    """mIoU (percent) recomputed from dumped predictions, after checking they cover VOC2012's
    val split, in order, against its label PNGs at their own size."""
    samples = load(dumped)
    ids = open(osp.join(voc2012, 'ImageSets/Segmentation/val.txt')).read().split()
    assert [osp.splitext(osp.basename(s['img_path']))[0] for s in samples] == ids
    intersect, union = np.zeros(21), np.zeros(21)
    for image_id, sample in zip(ids, samples):
        gt = np.array(Image.open(osp.join(voc2012, 'SegmentationClass', f'{image_id}.png')))
        np.testing.assert_array_equal(sample['gt_sem_seg']['data'][0].numpy(), gt)
        pred = sample['pred_sem_seg']['data'][0].numpy()
        assert pred.shape == gt.shape                # predicted at the image's own size
        valid = gt != 255                            # VOC's boundary pixels: ignored
        for c in range(21):
            p, g = (pred == c) & valid, (gt == c) & valid
            intersect[c] += (p & g).sum()
            union[c] += (p | g).sum()
    with np.errstate(invalid='ignore'):
        return float(np.nanmean(intersect / union) * 100)


def test_twins_differ_only_in_backbone():
    pce = Config.fromfile(osp.join(REPO, 'configs/pce_upernet_voc.py')).to_dict()
    res = Config.fromfile(osp.join(REPO, 'configs/resnet_upernet_voc.py')).to_dict()
    assert pce['model'].pop('backbone')['type'] == 'PCENet'
    assert res['model'].pop('backbone')['type'] == 'ResNetV1c'
    assert pce == res
    assert pce['val_evaluator']['type'] == 'IoUMetric'
    assert pce['val_evaluator']['iou_metrics'] == ['mIoU']


@pytest.mark.parametrize('name', ['pce_upernet_voc', 'resnet_upernet_voc'])
def test_upernet_twin_trains_and_reports_the_miou_of_its_val_predictions(
        name, voc_root, tmp_path):
    cfg = load_config(name, tiny_options(osp.join(voc_root, 'VOC2012')))
    runner = build_runner(cfg, str(tmp_path))
    assert isinstance(runner.model.backbone, PCENet) == name.startswith('pce')
    runner.train()                                   # two iterations, then validation
    dumped = str(tmp_path / 'predictions.pkl')
    runner.test_evaluator.metrics.append(DumpResults(out_file_path=dumped))
    metrics = runner.test()
    assert metrics['mIoU'] == pytest.approx(
        miou_of_dumped(dumped, osp.join(voc_root, 'VOC2012')), abs=0.006)


def test_sbd_aug_set_is_used_when_present(voc_root, tmp_path):
    from mmseg.registry import DATASETS
    voc2012 = str(tmp_path / 'VOC2012')
    shutil.copytree(osp.join(voc_root, 'VOC2012'), voc2012)
    cfg = load_config('pce_upernet_voc', {'data_root': voc2012})
    without = DATASETS.build(cfg.train_dataloader.dataset)
    write_voc_aug(voc2012)
    with_aug = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(with_aug) == 2 * len(without) > 0


def test_mmseg_own_upernet_voc_config_takes_pcenet_as_a_drop_in(voc_root, tmp_path):
    cfg = Config.fromfile(osp.join(osp.dirname(mmseg.__file__), '.mim/configs/upernet/'
                                   'upernet_r50_4xb4-20k_voc12aug-512x512.py'))
    cfg.model.backbone = dict(type='PCENet', arch='r50')
    cfg.model.pretrained = None
    cfg.custom_imports = dict(imports=['pce_mm'], allow_failed_imports=False)
    voc2012 = str(tmp_path / 'VOC2012')
    shutil.copytree(osp.join(voc_root, 'VOC2012'), voc2012)
    write_voc_aug(voc2012)                           # mmseg's voc12aug needs the SBD files
    cfg.data_root = 'data/VOCdevkit/VOC2012'
    options = tiny_options(voc2012)
    merge_cli_options(cfg, options)
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[field].update(num_workers=0, persistent_workers=False)
    runner = build_runner(cfg, str(tmp_path / 'work'))
    assert isinstance(runner.model.backbone, PCENet)
    runner.train()
    dumped = str(tmp_path / 'predictions.pkl')
    runner.val_evaluator.metrics.append(DumpResults(out_file_path=dumped))
    metrics = runner.val_loop.run()
    assert metrics['mIoU'] == pytest.approx(miou_of_dumped(dumped, voc2012), abs=0.006)

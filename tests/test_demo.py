"""The demos (configs/demo/): detection and segmentation train and evaluate on demo data in
the VOC layout through a real Runner, with validation and test splits held out of training.
"""
import os.path as osp

import pytest
from helpers import build_runner, load_config

from pce_mm.datasets.voc_demo import make_demo_voc


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('demo') / 'VOCdevkit')
    make_demo_voc(root, num_train=4, num_test=2, num_val=2, size=(96, 128), seed=0)
    return root + '/'


def image_ids(dataset) -> set:
    return {osp.basename(dataset.get_data_info(i)['img_path']) for i in range(len(dataset))}


@pytest.mark.parametrize('config', ['demo/pce_frcnn_demo', 'demo/resnet_frcnn_demo',
                                    'demo/pce_upernet_demo', 'demo/resnet_upernet_demo'])
def test_demo_trains_on_both_years_and_holds_validation_and_test_out(config, demo_root):
    from mmengine.registry import DATASETS, DefaultScope
    cfg = load_config(config, {'data_root': demo_root})
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        train, val, test = (image_ids(DATASETS.build(cfg[f'{split}_dataloader'].dataset))
                            for split in ('train', 'val', 'test'))
    assert len(train) == 4 and len(val) == 2 and len(test) == 2
    assert {i.startswith('2012_') for i in train} == {True, False}    # VOC2007 and VOC2012
    assert all(i.startswith('2012_') for i in val) and not any(i.startswith('2012_')
                                                               for i in test)
    assert not (train & val or train & test or val & test)


def test_segmentation_demo_trains_both_phases_and_reports_miou(demo_root, tmp_path):
    small = (128, 128)        # the demo's 256 px crops, halved: seconds, not minutes
    cfg = load_config('demo/pce_upernet_demo', {
        'data_root': demo_root, 'train_dataloader.batch_size': 2, 'train_cfg.max_iters': 2,
        'model.backbone.phase_cfg.warmup_iters': 1, 'model.data_preprocessor.size': small,
        'train_dataloader.dataset.datasets.0.pipeline.3.crop_size': small,
        'train_dataloader.dataset.datasets.1.pipeline.3.crop_size': small,
        'test_dataloader.dataset.pipeline.1.scale': small})
    runner = build_runner(cfg, str(tmp_path))
    runner.train()
    assert runner.model.backbone.switched                  # both phases ran
    metrics = runner.test()
    assert 0 <= metrics['mIoU'] <= 100 and runner.test_dataloader.dataset.ann_file.endswith(
        'VOC2007/ImageSets/Segmentation/test.txt')


def test_demo_splits_draw_from_their_own_streams(tmp_path):
    """More test images leave the training images and the first test images as they were."""
    small, large = str(tmp_path / 'small'), str(tmp_path / 'large')
    make_demo_voc(small, num_train=4, num_test=2, size=(48, 64))
    make_demo_voc(large, num_train=4, num_test=3, num_val=1, size=(48, 64))
    for name in ('VOC2007/JPEGImages/000001.jpg', 'VOC2012/JPEGImages/2012_000002.jpg',
                 'VOC2007/JPEGImages/100002.jpg'):
        assert open(osp.join(small, name), 'rb').read() == open(osp.join(large, name),
                                                               'rb').read(), name
    tests = open(osp.join(large, 'VOC2007/ImageSets/Main/test.txt')).read().split()
    assert tests == ['100001', '100002', '100003']
    assert 'val' not in open(osp.join(large, 'VOC2012/ImageSets/Main/trainval.txt')).read()

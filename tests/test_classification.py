"""Classification twins (MNIST, CIFAR-10, Tiny-ImageNet, PatchCamelyon): each config loads,
builds and trains on tiny files in the official formats, through a real Runner."""
import os.path as osp
import re

import numpy as np
import pytest
from helpers import REPO, build_runner, load_config
from mmengine.config import Config
from mmpretrain.datasets import MNIST
from mmpretrain.registry import DATASETS

from pce_mm.datasets.synthetic import (CIFAR10_CLASSES, SyntheticCIFAR10, write_cifar10,
                                       write_mnist, write_pcam, write_tiny_imagenet)
from pce_mm.models import PCENet


def write_data(task: str, root: str) -> dict:
    """Tiny official-format data for `task`; returns --cfg-options that point at it."""
    if task == 'cifar10':
        write_cifar10(root, per_batch=2)
        return {'data_root': root, 'train_dataloader.dataset.type': 'SyntheticCIFAR10',
                'val_dataloader.dataset.type': 'SyntheticCIFAR10',
                'test_dataloader.dataset.type': 'SyntheticCIFAR10'}
    if task == 'mnist':
        write_mnist(root, num_train=8, num_test=4)
    elif task == 'tinyimagenet':
        write_tiny_imagenet(root, per_class=3, num_val=4)
    elif task == 'pcam':
        write_pcam(root, sizes=(('train', 8), ('valid', 4), ('test', 4)))
    return {'data_root': root}


TASKS = ['mnist', 'cifar10', 'tinyimagenet', 'pcam']


@pytest.mark.parametrize('task', TASKS + ['digits'])
def test_twins_differ_only_in_backbone(task):
    pce = Config.fromfile(osp.join(REPO, f'configs/pce_{task}.py')).to_dict()
    res = Config.fromfile(osp.join(REPO, f'configs/resnet_{task}.py')).to_dict()
    assert pce['model'].pop('backbone')['type'] == 'PCENet'
    assert res['model'].pop('backbone')['type'].startswith('ResNet')
    assert pce == res


@pytest.mark.parametrize('model', ['pce', 'resnet'])
@pytest.mark.parametrize('task', TASKS)
def test_config_trains_and_evaluates_on_official_format_files(task, model, tmp_path):
    options = write_data(task, str(tmp_path / 'data'))
    options.update({'train_dataloader.batch_size': 4, 'val_dataloader.batch_size': 4,
                    'test_dataloader.batch_size': 4, 'train_cfg.max_epochs': 1,
                    'default_hooks.logger.interval': 1})
    cfg = load_config(f'{model}_{task}', options)
    runner = build_runner(cfg, str(tmp_path / 'work'))
    assert isinstance(runner.model.backbone, PCENet) == (model == 'pce')
    runner.train()                                   # one epoch, then validation
    metrics = runner.test()
    assert 'accuracy/top1' in metrics
    if task == 'pcam':
        assert 0 <= metrics['auc/AUC'] <= 100
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert re.search(r'Epoch\(train\) \[1\]\[\d+/\d+\] .* loss: ', log)


def test_mnist_test_split_is_the_test_digits_not_the_training_ones(tmp_path):
    written = write_mnist(str(tmp_path), num_train=8, num_test=4)
    cfg = load_config('pce_mnist', {'data_root': str(tmp_path)})
    train = DATASETS.build(cfg.train_dataloader.dataset)
    test = DATASETS.build(cfg.val_dataloader.dataset)
    assert isinstance(test, MNIST) and len(train) == 8 and len(test) == 4
    np.testing.assert_array_equal(test.get_data_info(3)['img'], written['t10k'][0][3])
    assert test.get_data_info(3)['gt_label'] == written['t10k'][1][3]


def test_cifar10_reads_pickled_batches_with_their_class_names(tmp_path):
    written = write_cifar10(str(tmp_path), per_batch=2)
    ds = SyntheticCIFAR10(str(tmp_path), split='test')
    data, labels = written['test_batch']
    assert ds.CLASSES == CIFAR10_CLASSES
    np.testing.assert_array_equal(ds.get_data_info(1)['img'],
                                  data[1].reshape(3, 32, 32).transpose(1, 2, 0))
    assert ds.get_data_info(1)['gt_label'] == labels[1]


def test_missing_cifar_files_fail_without_a_download_attempt(tmp_path):
    cfg = load_config('pce_cifar10', {'data_root': str(tmp_path)})
    with pytest.raises(RuntimeError, match=str(tmp_path)):
        DATASETS.build(cfg.train_dataloader.dataset)


def test_pce_augmentations_train_in_a_config_pipeline_and_preprocessor(tmp_path):
    options = write_data('cifar10', str(tmp_path / 'data'))
    options.update({'train_dataloader.batch_size': 4, 'train_cfg.max_epochs': 1})
    cfg = load_config('pce_cifar10', options)
    cfg.train_dataloader.dataset.pipeline.insert(
        0, dict(type='RandomChannelBoost', prob=0.5))
    cfg.train_dataloader.dataset.pipeline.insert(
        0, dict(type='RandomBlackPatches', prob=0.5))
    cfg.model.data_preprocessor = dict(
        type='ClsDataPreprocessor', batch_augments=dict(augments=[
            dict(type='BatchChannelBoost', prob=1.0, mean=cfg.data_preprocessor.mean,
                 std=cfg.data_preprocessor.std)], probs=[0.5]), **cfg.data_preprocessor)
    runner = build_runner(cfg, str(tmp_path / 'work'))
    runner.train()
    assert runner.iter == 3


def test_digits_hold_out_a_seeded_validation_fifth_and_the_test_digits(tmp_path):
    from pce_mm.datasets.digits import make_digits_mnist
    counts = make_digits_mnist(str(tmp_path), test_fraction=0.25)
    assert counts == dict(t10k=449, train=1348)
    cfg = load_config('pce_digits', {'data_root': str(tmp_path)})
    train, val, test = (DATASETS.build(cfg[f'{split}_dataloader'].dataset)
                        for split in ('train', 'val', 'test'))
    assert (len(train), len(val), len(test)) == (1079, 269, 449)
    image = test.get_data_info(0)['img']
    assert image.shape == (28, 28) and image.max() > 200 and not image[:2].any()
    labels = {int(train.get_data_info(i)['gt_label']) for i in range(len(train))}
    assert labels == set(range(10))

    def images(ds):
        return {ds.get_data_info(i)['img'].tobytes() for i in range(len(ds))}
    assert not images(train) & images(val) and not images(test) & images(val)
    # Seeded: the same digits are held out every time the config is read.
    again = DATASETS.build(load_config('pce_digits', {'data_root': str(tmp_path)})
                           .val_dataloader.dataset)
    assert images(again) == images(val)

"""Classification twins (MNIST, CIFAR-10, Tiny-ImageNet, PatchCamelyon): each config loads,
builds and trains on tiny files in the official formats, through a real Runner."""
import copy
import os.path as osp
import re

import numpy as np
import pytest
import torch
from helpers import REPO, build_runner, load_config
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.evaluator import DumpResults
from mmengine.fileio import load
from mmpretrain.datasets import MNIST
from mmpretrain.registry import DATASETS
from sklearn.metrics import roc_auc_score

from pce_mm.datasets.synthetic import (CIFAR10_CLASSES, SyntheticCIFAR10, write_cifar10,
                                       write_mnist, write_pcam, write_tiny_imagenet)
from pce_mm.models import PCENet


def write_data(task: str, root: str) -> tuple:
    """Tiny official-format data for `task`: the --cfg-options that point at it, and the
    labels of its test split as written, in file order."""
    if task == 'cifar10':
        written = write_cifar10(root, per_batch=2)
        return {'data_root': root, 'train_dataloader.dataset.type': 'SyntheticCIFAR10',
                'val_dataloader.dataset.type': 'SyntheticCIFAR10',
                'test_dataloader.dataset.type': 'SyntheticCIFAR10'}, \
            list(written['test_batch'][1])
    if task == 'mnist':
        labels = write_mnist(root, num_train=8, num_test=4)['t10k'][1]
    elif task == 'tinyimagenet':
        labels = write_tiny_imagenet(root, per_class=3, num_val=4)['val_labels']
    elif task == 'pcam':
        labels = write_pcam(root, sizes=(('train', 8), ('valid', 4), ('test', 4)))['test'][1]
    return {'data_root': root}, [int(v) for v in labels]


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
def test_config_trains_and_evaluates_its_test_split_on_official_format_files(
        task, model, tmp_path):
    options, test_labels = write_data(task, str(tmp_path / 'data'))
    options.update({'train_dataloader.batch_size': 4, 'val_dataloader.batch_size': 4,
                    'test_dataloader.batch_size': 4, 'train_cfg.max_epochs': 1,
                    'default_hooks.logger.interval': 1})
    cfg = load_config(f'{model}_{task}', options)
    runner = build_runner(cfg, str(tmp_path / 'work'))
    assert isinstance(runner.model.backbone, PCENet) == (model == 'pce')
    runner.train()                                   # one epoch, then validation
    dumped = str(tmp_path / 'predictions.pkl')
    runner.test_evaluator.metrics.append(DumpResults(out_file_path=dumped))
    metrics = runner.test()
    # Every image of the test split, once, in order, against the labels on disk; and the
    # metric is what those predictions score.
    predictions = load(dumped)
    assert [int(p['gt_label'][0]) for p in predictions] == test_labels
    hits = [int(p['pred_label'][0]) == label for p, label in zip(predictions, test_labels)]
    assert metrics['accuracy/top1'] == pytest.approx(100 * np.mean(hits))
    if task == 'pcam':                               # both classes in the test split
        scores = [float(p['pred_score'][1]) for p in predictions]
        assert metrics['auc/AUC'] == pytest.approx(100 * roc_auc_score(test_labels, scores))
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


def test_pce_augmentations_train_in_a_config_pipeline_and_preprocessor_and_keep_labels(
        tmp_path):
    """The transforms change the images of the training pipeline, the batch augment the
    normalised batch (one channel of an image), and neither touches a label."""
    options, _ = write_data('cifar10', str(tmp_path / 'data'))
    options.update({'train_dataloader.batch_size': 4, 'train_cfg.max_epochs': 1})
    cfg = load_config('pce_cifar10', options)
    cfg.train_dataloader.dataset.pipeline.insert(
        0, dict(type='RandomChannelBoost', prob=1.0))
    cfg.train_dataloader.dataset.pipeline.insert(
        0, dict(type='RandomBlackPatches', prob=1.0))
    cfg.model.data_preprocessor = dict(
        type='ClsDataPreprocessor', batch_augments=dict(augments=[
            dict(type='BatchChannelBoost', prob=1.0, mean=cfg.data_preprocessor.mean,
                 std=cfg.data_preprocessor.std)], probs=[1.0]), **cfg.data_preprocessor)
    runner = build_runner(cfg, str(tmp_path / 'work'))
    dataset = runner.train_dataloader.dataset
    pipeline = dataset.pipeline.transforms
    assert [type(t).__name__ for t in pipeline[:2]] == ['RandomBlackPatches',
                                                        'RandomChannelBoost']
    # Each transform of the runner's own pipeline, watched: pixels in and out, label kept.
    seen = {t: [] for t in pipeline[:2]}
    for t in pipeline[:2]:
        def watch(results, t=t, transform=t.transform):
            before = results['img'].copy(), results['gt_label']
            results = transform(results)
            seen[t].append((not np.array_equal(before[0], results['img']),
                            results['gt_label'] == before[1]))
            return results
        t.transform = watch
    batches = []                                     # training batches: (in, out)

    def before(module, args):
        if args[1]:
            batches.append([copy.deepcopy(args[0])])

    def after(module, args, out):
        if args[1]:
            batches[-1].append((out['inputs'].clone(),
                                [s.gt_label.clone() for s in out['data_samples']],
                                [s.gt_score.clone() for s in out['data_samples']]))

    preprocessor = runner.model.data_preprocessor
    hooks = [preprocessor.register_forward_pre_hook(before),
             preprocessor.register_forward_hook(after)]
    runner.train()
    assert runner.iter == len(batches) == 3
    for t, calls in seen.items():
        assert len(calls) == len(dataset) == 10, t
        assert all(changed and same_label for changed, same_label in calls), (t, calls)
    for hook in hooks:
        hook.remove()
    for data, (inputs, labels, scores) in batches:
        plain = preprocessor(data, False)            # the same batch without batch augments
        changed = (inputs != plain['inputs']).flatten(2).any(-1)          # (b, c)
        assert (changed.sum(1) == 1).all(), changed  # one boosted channel an image
        for sample, label, score in zip(data['data_samples'], labels, scores):
            index = sample.metainfo['sample_idx']
            assert label.tolist() == [dataset.get_data_info(index)['gt_label']]
            assert score.tolist() == torch.nn.functional.one_hot(label, 10)[0].tolist()


def test_digits_hold_out_a_seeded_validation_fifth_and_the_test_digits(tmp_path):
    from pce_mm.datasets.digits import make_digits_mnist
    counts = make_digits_mnist(str(tmp_path), test_fraction=0.25)
    assert counts == dict(t10k=449, train=1348)
    cfg = load_config('pce_digits', {'data_root': str(tmp_path)})
    with DefaultScope.overwrite_default_scope('mmpretrain'):   # as in a Runner
        train, val, test = [DATASETS.build(cfg[f'{split}_dataloader'].dataset)
                            for split in ('train', 'val', 'test')]
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


def test_a_training_fraction_is_seeded_nested_and_leaves_validation_alone(tmp_path):
    from pce_mm.datasets.digits import make_digits_mnist
    make_digits_mnist(str(tmp_path), test_fraction=0.25)

    def split(name, fraction):
        cfg = load_config('pce_digits', {'data_root': str(tmp_path),
                                         'train_dataloader.dataset.fraction': fraction})
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            ds = DATASETS.build(cfg[f'{name}_dataloader'].dataset)
        return [ds.get_data_info(i)['img'].tobytes() for i in range(len(ds))]

    full, half, quarter = (split('train', f) for f in (1.0, 0.5, 0.25))
    assert (len(full), len(half), len(quarter)) == (1079, 540, 270)
    assert set(quarter) < set(half) < set(full)
    assert split('train', 0.25) == quarter                  # seeded
    assert split('val', 0.25) == split('val', 1.0)          # validation untouched
    with pytest.raises(ValueError, match='fraction'):
        split('train', 0.0)

"""TinyImageNet reads the folder tree as distributed; bad trees name the file."""
import os
import os.path as osp

import pytest

from pce_mm.datasets import TinyImageNet
from pce_mm.datasets.synthetic import write_tiny_imagenet


@pytest.fixture
def root(tmp_path):
    root = str(tmp_path / 'tiny-imagenet-200')
    return root, write_tiny_imagenet(root)


def test_train_split_reads_every_class_folder_with_names_from_words_txt(root):
    root, written = root
    ds = TinyImageNet(root, split='train', pipeline=[dict(type='LoadImageFromFile')])
    assert len(ds) == 9
    assert ds.CLASSES == tuple(written['names'])
    labels = [ds.get_data_info(i)['gt_label'] for i in range(len(ds))]
    assert labels == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    sample = ds[0]
    assert sample['img'].shape == (64, 64, 3) and sample['gt_label'] == 0


def test_val_split_takes_labels_from_val_annotations(root):
    root, written = root
    ds = TinyImageNet(root, split='val')
    assert ds.test_mode
    assert [ds.get_data_info(i)['gt_label'] for i in range(len(ds))] == written['val_labels']
    assert osp.basename(ds.get_data_info(1)['img_path']) == 'val_1.JPEG'


def test_test_split_is_unlabelled(root):
    ds = TinyImageNet(root[0], split='test')
    assert len(ds) == 2 and ds.get_data_info(0)['gt_label'] == -1


def test_missing_or_malformed_files_are_named(root):
    root, _ = root
    with pytest.raises(ValueError, match='split'):
        TinyImageNet(root, split='validation')
    ann = osp.join(root, 'val', 'val_annotations.txt')
    with open(ann, 'a') as f:
        f.write('val_9.JPEG\tn00000000\t0\t0\t1\t1\n')
    with pytest.raises(ValueError, match='val_annotations.txt line 5'):
        TinyImageNet(root, split='val')
    os.remove(osp.join(root, 'words.txt'))
    with pytest.raises(FileNotFoundError, match='words.txt'):
        TinyImageNet(root, split='train')


def test_image_that_does_not_decode_fails_with_its_path(root):
    root, _ = root
    bad = osp.join(root, 'val', 'images', 'val_0.JPEG')
    with open(bad, 'wb') as f:
        f.write(b'not a jpeg')
    ds = TinyImageNet(root, split='val', pipeline=[dict(type='LoadImageFromFile')])
    with pytest.raises(Exception, match='val_0.JPEG'):
        ds[0]

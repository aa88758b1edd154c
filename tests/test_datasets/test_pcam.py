"""PCam reads the official HDF5 files lazily, gzipped or not; bad files are named."""
import os.path as osp

import numpy as np
import pytest

from pce_mm.datasets import PCam
from pce_mm.datasets.synthetic import write_pcam


@pytest.mark.parametrize('gzipped', [False, True])
def test_reads_images_and_labels_of_each_split(tmp_path, gzipped):
    written = write_pcam(str(tmp_path), gzipped=gzipped)
    for split in ('train', 'valid', 'test'):
        ds = PCam(str(tmp_path), split=split)
        x, y = written[split]
        assert len(ds) == len(y) and ds.CLASSES == ('normal', 'tumor')
        assert ds.test_mode == (split != 'train')
        for i in (0, len(ds) - 1):
            info = ds.get_data_info(i)
            np.testing.assert_array_equal(info['img'], x[i])
            assert info['gt_label'] == y[i]


def test_gzipped_files_are_decompressed_once_into_extract_dir(tmp_path):
    write_pcam(str(tmp_path / 'src'), gzipped=True)
    PCam(str(tmp_path / 'src'), split='valid', extract_dir=str(tmp_path / 'cache'))
    assert osp.isfile(tmp_path / 'cache' / 'camelyonpatch_level_2_split_valid_x.h5')


def test_images_are_read_lazily_not_held_in_the_data_list(tmp_path):
    write_pcam(str(tmp_path), sizes=(('train', 64), ))
    ds = PCam(str(tmp_path), split='train')
    # The serialised data list holds an index and a label per patch, not 27 KB of pixels.
    assert len(ds.data_bytes) < 64 * 200
    assert ds.get_data_info(63)['img'].shape == (96, 96, 3)


def test_missing_truncated_or_malformed_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='split_test_x.h5'):
        PCam(str(tmp_path), split='test')
    write_pcam(str(tmp_path))
    x_path = str(tmp_path / 'camelyonpatch_level_2_split_test_x.h5')
    with open(x_path, 'rb') as f:
        head = f.read(2048)
    with open(x_path, 'wb') as f:
        f.write(head)
    with pytest.raises(OSError, match='split_test_x.h5'):
        PCam(str(tmp_path), split='test')
    import h5py
    with h5py.File(x_path, 'w') as f:
        f.create_dataset('x', data=np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r'split_test_x.h5.*\(N, 96, 96, 3\)'):
        PCam(str(tmp_path), split='test')
    with pytest.raises(ValueError, match='split'):
        PCam(str(tmp_path), split='val')

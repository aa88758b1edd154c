"""RandomChannelBoost and RandomBlackPatches, as transforms and as batch augments: pixels
change, annotations do not, only a `prob` share of samples (or batches) is touched, and
bad parameters are refused."""
import numpy as np
import pytest
import torch
from mmdet.structures.mask import BitmapMasks

from pce_mm.datasets import RandomBlackPatches, RandomChannelBoost
from pce_mm.models import BatchBlackPatches, BatchChannelBoost

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def sample(seed=0):
    rng = np.random.default_rng(seed)
    return dict(img=rng.integers(20, 200, (40, 50, 3), dtype=np.uint8),
                gt_bboxes=np.array([[1., 2., 30., 35.]], np.float32),
                gt_bboxes_labels=np.array([3]),
                gt_masks=BitmapMasks(rng.integers(0, 2, (1, 40, 50), dtype=np.uint8), 40, 50),
                gt_seg_map=rng.integers(0, 21, (40, 50), dtype=np.uint8),
                gt_label=np.array(7))


@pytest.mark.parametrize('transform', [RandomChannelBoost(prob=1.0),
                                       RandomBlackPatches(prob=1.0)])
def test_transforms_change_pixels_and_nothing_else(transform):
    before = sample()
    after = transform(sample())
    assert not np.array_equal(after['img'], before['img'])
    assert after['img'].dtype == np.uint8 and after['img'].shape == before['img'].shape
    np.testing.assert_array_equal(after['gt_bboxes'], before['gt_bboxes'])
    np.testing.assert_array_equal(after['gt_bboxes_labels'], before['gt_bboxes_labels'])
    np.testing.assert_array_equal(after['gt_masks'].masks, before['gt_masks'].masks)
    np.testing.assert_array_equal(after['gt_seg_map'], before['gt_seg_map'])
    assert after['gt_label'] == before['gt_label']


def test_channel_boost_raises_exactly_one_channel_and_clips():
    img = sample()['img']
    out = RandomChannelBoost(prob=1.0, factor=(2.0, 2.0))(dict(img=img.copy()))['img']
    changed = [c for c in range(3) if not np.array_equal(out[..., c], img[..., c])]
    assert len(changed) == 1
    c = changed[0]
    np.testing.assert_array_equal(out[..., c], np.minimum(img[..., c].astype(int) * 2, 255))


def test_black_patches_are_black_squares():
    out = RandomBlackPatches(prob=1.0, num_patches=1, size=0.4)(dict(img=sample()['img']))
    ys, xs = np.nonzero((out['img'] == 0).all(-1))
    assert ys.max() - ys.min() + 1 == xs.max() - xs.min() + 1 == 16   # 0.4 * 40


@pytest.mark.parametrize('cls', [RandomChannelBoost, RandomBlackPatches])
def test_transforms_honour_prob(cls):
    np.random.seed(0)
    transform = cls(prob=0.3)
    img = sample()['img']
    changed = sum(not np.array_equal(transform(dict(img=img))['img'], img)
                  for _ in range(1000))
    assert 240 < changed < 360                      # binomial(1000, 0.3): mean 300, sd 14.5


@pytest.mark.parametrize('cls, kwargs, setting', [
    (RandomChannelBoost, dict(prob=1.5), 'prob'),
    (RandomChannelBoost, dict(factor=(2, 1)), 'factor'),
    (RandomChannelBoost, dict(factor=0.5), 'factor'),
    (RandomBlackPatches, dict(num_patches=(0, 2)), 'num_patches'),
    (RandomBlackPatches, dict(num_patches=(1.5, 2)), 'num_patches'),
    (RandomBlackPatches, dict(size=(0.1, 1.5)), 'size'),
    (BatchChannelBoost, dict(prob=-0.1), 'prob'),
    (BatchBlackPatches, dict(mean=MEAN), 'mean and std'),
])
def test_bad_parameters_are_refused_naming_them(cls, kwargs, setting):
    with pytest.raises(ValueError, match=setting):
        cls(**kwargs)


def normalised_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(20, 200, (4, 3, 24, 24), generator=g).float()
    return pixels, (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / \
        torch.tensor(STD).view(1, 3, 1, 1)


def test_batch_augments_work_in_pixel_space_and_pass_the_rest_through():
    pixels, inputs = normalised_batch()
    labels = object()
    out, same = BatchBlackPatches(prob=1.0, mean=MEAN, std=STD)(inputs, labels)
    assert same is labels
    black = (torch.tensor([0.0]) - torch.tensor(MEAN)) / torch.tensor(STD)
    hidden = (out == black.view(1, 3, 1, 1)).all(1)           # (n, h, w)
    assert all(hidden[i].any() for i in range(4))             # every image of the batch
    out, _ = BatchChannelBoost(prob=1.0, factor=(1.5, 1.5), mean=MEAN, std=STD)(inputs, None)
    back = out * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    for i in range(4):
        changed = [c for c in range(3) if not torch.allclose(back[i, c], pixels[i, c])]
        assert len(changed) == 1
        torch.testing.assert_close(back[i, changed[0]],
                                   (pixels[i, changed[0]] * 1.5).clamp(max=255))


def test_batch_augments_touch_a_prob_share_of_batches():
    np.random.seed(0)
    aug = BatchChannelBoost(prob=0.25)
    _, inputs = normalised_batch()
    changed = sum(not torch.equal(aug(inputs, None)[0], inputs) for _ in range(800))
    assert 160 < changed < 240                      # binomial(800, 0.25): mean 200, sd 12


def test_registered_for_every_pipeline_and_preprocessor():
    from mmdet.registry import MODELS as DET_MODELS
    from mmdet.registry import TRANSFORMS as DET_TRANSFORMS
    from mmpretrain.models import ClsDataPreprocessor
    from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS
    assert isinstance(DET_TRANSFORMS.build(
        dict(type='RandomChannelBoost', _scope_='mmdet')), RandomChannelBoost)
    assert isinstance(SEG_TRANSFORMS.build(
        dict(type='RandomBlackPatches', _scope_='mmseg')), RandomBlackPatches)
    det = DET_MODELS.build(dict(type='DetDataPreprocessor', _scope_='mmdet', mean=MEAN, std=STD,
                                batch_augments=[dict(type='BatchBlackPatches', prob=1.0,
                                                     mean=MEAN, std=STD)]))
    assert isinstance(det.batch_augments[0], BatchBlackPatches)
    cls = ClsDataPreprocessor(mean=MEAN, std=STD, num_classes=10, batch_augments=dict(
        augments=[dict(type='BatchChannelBoost', prob=1.0, mean=MEAN, std=STD)], probs=[0.5]))
    assert isinstance(cls.batch_augments.augments[0], BatchChannelBoost)

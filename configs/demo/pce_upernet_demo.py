# `make demo DEMO_TASK=seg`: configs/pce_upernet_voc.py on the embedded demo data, at 320x256
# with 256x256 crops, 192 iterations of batch 4 (phase 1 = iterations 1-64), evaluated once by
# tools/test.py with mmseg's IoUMetric. Training reads both years' training images (the
# config's optional SBD member is pointed at VOC2007's); validation (settings are chosen on
# it) is VOC2012 `val`, held out of the training lists; the test split is VOC2007 `test`.
# Twin: resnet_upernet_demo.py.
_base_ = '../pce_upernet_voc.py'

data_root = 'data/demo/VOCdevkit/'
scale = (320, 256)
crop_size = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]


def _voc(year: str, split: str, pipeline: list) -> dict:
    return dict(type='PascalVOCDataset', data_root=data_root,
                data_prefix=dict(img_path=f'{year}/JPEGImages',
                                 seg_map_path=f'{year}/SegmentationClass'),
                ann_file=f'{year}/ImageSets/Segmentation/{split}.txt', pipeline=pipeline)


train_dataloader = dict(dataset=dict(datasets=[_voc('VOC2012', 'train', train_pipeline),
                                               _voc('VOC2007', 'train', train_pipeline)]))
val_dataloader = dict(batch_size=1,
                      dataset=dict(_delete_=True, **_voc('VOC2012', 'val', test_pipeline)))
test_dataloader = dict(batch_size=1,
                       dataset=dict(_delete_=True, **_voc('VOC2007', 'test', test_pipeline)))

# Batches are padded to the crop: the data preprocessor's size, as mmseg's configs set it.
# The head is 128 channels wide, not mmseg's 512: at 512 its 3x3 convs at 1/4 resolution cost
# 54 GFLOPs an image against the backbone's 6: a run took 40 min on one CPU core, 90% of it
# in the head. At 128 the head costs 4 GFLOPs.
model = dict(data_preprocessor=dict(size=crop_size),
             backbone=dict(phase_cfg=dict(warmup_iters=64)),
             decode_head=dict(channels=128))
# Chosen by both twins on the validation images from their common grid
# (configs/studies/demo_seg_lr.py); mmseg's schedule has 0.01.
optim_wrapper = dict(optimizer=dict(lr=0.02))
train_cfg = dict(max_iters=192, val_interval=1000)   # no validation while training
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=192, by_epoch=False)
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=64))

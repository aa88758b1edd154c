# `make demo`: configs/pce_frcnn_voc.py on the embedded demo data (tools/misc/make_demo_voc.py:
# scikit-image's photographs in the VOC layout), at 320x256, 3 epochs of 64 iterations
# (batch 2; phase 1 = epoch 1), evaluated once by tools/test.py. 128 sampled RoIs per image
# instead of 512: mmcv's CPU RoIAlign is single-threaded and took 35% of a step. Validation
# (settings are chosen on it) is VOC2012 `val`, held out of the demo's training lists; the
# test split is VOC2007 `test`. Twin: resnet_frcnn_demo.py.
_base_ = '../pce_frcnn_voc.py'

data_root = 'data/demo/VOCdevkit/'
scale = (320, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
_filter = dict(filter_empty_gt=True, min_size=32, bbox_min_size=32)
train_dataloader = dict(
    dataset=dict(
        times=1,
        dataset=dict(datasets=[
            dict(type='VOCDataset', data_root=data_root,
                 ann_file='VOC2007/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root='VOC2007/'), filter_cfg=_filter,
                 pipeline=train_pipeline),
            dict(type='VOCDataset', data_root=data_root,
                 ann_file='VOC2012/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root='VOC2012/'), filter_cfg=_filter,
                 pipeline=train_pipeline)])))
val_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file='VOC2012/ImageSets/Main/val.txt',
                 data_prefix=dict(sub_data_root='VOC2012/'), pipeline=test_pipeline))
test_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file='VOC2007/ImageSets/Main/test.txt',
                 data_prefix=dict(sub_data_root='VOC2007/'), pipeline=test_pipeline))

model = dict(train_cfg=dict(rcnn=dict(sampler=dict(num=128))))
# Chosen on the validation images from the twins' common grid (configs/studies/demo_det_lr.py).
optim_wrapper = dict(optimizer=dict(lr=0.005))
train_cfg = dict(max_epochs=3, val_begin=4)          # no validation while training
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=3, by_epoch=True, milestones=[2], gamma=0.1)
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1))

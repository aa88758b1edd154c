# Tiny-ImageNet-200 at its own 64x64 (folder tree in data/tiny-imagenet-200; val split with
# val_annotations.txt), CIFAR-style stem that keeps the resolution, cosine SGD for 100
# epochs; top-1 and top-5 accuracy on val.
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/schedules/imagenet_bs256_coslr.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['pce_mm'], allow_failed_imports=False)
# The router losses get the task loss's fp16 scale / accumulation factor; the experts' loads
# go to TensorBoard (PCENet only).
custom_hooks = [dict(type='RouterLossScaleHook'), dict(type='ExpertLoadHook')]

model = dict(head=dict(num_classes=200, topk=(1, 5)))
data_root = 'data/tiny-imagenet-200'
data_preprocessor = dict(
    num_classes=200, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=64, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(type='TinyImageNet', data_root=data_root, split='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(type='TinyImageNet', data_root=data_root, split='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
auto_scale_lr = dict(base_batch_size=128)

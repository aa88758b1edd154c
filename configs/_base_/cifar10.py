# mmpretrain's CIFAR-10 recipe (200 epochs, batch 128, SGD 0.1): CIFAR-10 python batches in
# data/cifar10/cifar-10-batches-py, top-1 accuracy on the test batch.
_base_ = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'
custom_imports = dict(imports=['pce_mm'], allow_failed_imports=False)
# The router losses get the task loss's fp16 scale / accumulation factor; the experts' loads
# go to TensorBoard (PCENet only).
custom_hooks = [dict(type='RouterLossScaleHook'), dict(type='ExpertLoadHook')]

data_root = 'data/cifar10'
# download=False: a missing file is an error naming it, not a download attempt.
train_dataloader = dict(dataset=dict(data_root=data_root, download=False))
val_dataloader = dict(dataset=dict(data_root=data_root, download=False))
test_dataloader = val_dataloader

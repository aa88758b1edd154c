# CIFAR-10 with PCENet-tiny (resolution-keeping stem). Twin: resnet_cifar10.py.
_base_ = './_base_/cifar10.py'

model = dict(
    backbone=dict(
        _delete_=True, type='PCENet', arch='tiny', num_experts=8, top_k=2, out_indices=(3, )))

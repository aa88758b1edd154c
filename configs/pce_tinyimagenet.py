# Tiny-ImageNet-200 with PCENet-tiny. Twin: resnet_tinyimagenet.py.
_base_ = './_base_/tinyimagenet.py'

model = dict(
    backbone=dict(
        _delete_=True, type='PCENet', arch='tiny', num_experts=8, top_k=2, out_indices=(3, )))

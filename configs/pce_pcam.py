# PatchCamelyon with PCENet-r18. Twin: resnet_pcam.py.
_base_ = './_base_/pcam.py'

model = dict(
    backbone=dict(
        _delete_=True, type='PCENet', arch='r18', num_experts=8, top_k=2,
        phase_cfg=dict(warmup_epochs=2), out_indices=(3, )))

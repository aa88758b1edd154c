# The demo (pce_frcnn_demo.py) with the ResNet-50 twin: only `backbone` differs, as between
# configs/pce_frcnn_voc.py and configs/resnet_frcnn_voc.py.
_base_ = './pce_frcnn_demo.py'

model = dict(
    backbone=dict(
        _delete_=True, type='ResNet', depth=50, out_indices=(0, 1, 2, 3), frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, init_cfg=None))

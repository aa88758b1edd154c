# The segmentation demo (pce_upernet_demo.py) with mmseg's ResNetV1c-50 twin: only `backbone`
# differs, as between configs/pce_upernet_voc.py and configs/resnet_upernet_voc.py.
_base_ = './pce_upernet_demo.py'

model = dict(
    backbone=dict(
        _delete_=True, type='ResNetV1c', depth=50, out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False,
        contract_dilation=True))

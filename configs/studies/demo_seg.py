# UperNet on the demo's masks: the tuned twins and PCE kept in phase 1, five seeds each,
# mmseg's mIoU on 400 test images. Data first:
#   python tools/misc/make_demo_voc.py data/demo400/VOCdevkit --train 128 --test 400 --val 40
description = ('UperNet (128-channel head) on the demo (128 training images, 192 iterations, '
               'batch 4, 256x256 crops; PCE: phase 1 = iterations 1-64), mIoU on 400 test '
               'images.')
_pce = 'configs/demo/pce_upernet_demo.py'
arms = dict(
    resnet=dict(config='configs/demo/resnet_upernet_demo.py'),
    pce=dict(config=_pce),
    pce_phase1_only=dict(config=_pce, options={'model.backbone.phase_cfg.warmup_iters': 192},
                         reference='pce'))
reference = 'resnet'
# Seeds 3 and 4 joined on 2026-12-07: with three, every arm's spread (std 3.7-4.6 mIoU)
# overlapped the others' means.
seeds = [0, 1, 2, 3, 4]
split = 'test'
metric = 'mIoU'
input_shape = (3, 256, 256)
options = {'data_root': 'data/demo400/VOCdevkit/'}

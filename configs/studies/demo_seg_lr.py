# The segmentation twins' learning rates on the demo (configs/demo/*_upernet_demo.py), chosen
# on its 40 validation images (VOC2012 val). Data first:
#   python tools/misc/make_demo_voc.py data/demo400/VOCdevkit --train 128 --test 400 --val 40
description = ('Learning rate of each UperNet twin (128-channel head) on the demo, chosen on '
               '40 validation images (192 iterations, batch 4, 256x256 crops).')
arms = dict(resnet=dict(config='configs/demo/resnet_upernet_demo.py'),
            pce=dict(config='configs/demo/pce_upernet_demo.py'))
reference = 'resnet'
# 0.04 joined the grid on 2026-12-07, when 0.02, then its highest, led PCE on seed 0: an
# optimum at the grid's edge is not a choice.
lrs = [0.005, 0.01, 0.02, 0.04]
seeds = [0, 1]
split = 'val'
metric = 'mIoU'
input_shape = (3, 256, 256)
options = {'data_root': 'data/demo400/VOCdevkit/'}

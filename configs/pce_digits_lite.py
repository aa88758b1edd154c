# PCENet-tiny at about half of ResNet_CIFAR-18's active FLOPs on the digits (0.25 against
# 0.46 GFLOPs at 28 px, mmengine's FlopAnalyzer): one expert a patch (k = 1) and experts 5/6
# as wide. The digits study's question: can routing buy back what the FLOPs give up? It
# keeps pce_digits.py's learning rate (not tuned on its own).
_base_ = './pce_digits.py'

model = dict(
    backbone=dict(
        top_k=1,
        arch=dict(_delete_=True, stem='cifar', stem_channels=64, channels=(64, 128, 256, 512),
                  expert_channels=(40, 80, 160, 320), depths=(3, 3, 3, 3),
                  strides=(1, 2, 2, 2), patch_sizes=(8, 4, 2, 1),
                  stage_with_context=(False, True, True, True))))

"""Every wrong setting of PCENet, its parts, the transforms and the datasets is refused when
built, with a message naming the setting (the table below is the list)."""
import os.path as osp

import pytest
import torch
from helpers import REPO
from mmengine.config import Config

from pce_mm.datasets import (PCam, RandomBlackPatches, RandomChannelBoost, TinyImageNet)
from pce_mm.models import (BatchBlackPatches, BatchChannelBoost, ConvExperts,
                           DeformableContext, PCEBlock, PatchRouter, PCENet)
from pce_mm.models.phase import TwoPhaseRecipe

TINY = dict(arch='tiny')

BAD_SETTINGS = [
    # PCENet
    (PCENet, dict(TINY, top_k=9, num_experts=8), ValueError, 'top_k'),
    (PCENet, dict(TINY, top_k=0), ValueError, 'top_k'),
    (PCENet, dict(TINY, num_experts=0), ValueError, 'num_experts=0'),
    (PCENet, dict(TINY, patch_size=0), ValueError, 'patch_size'),
    (PCENet, dict(TINY, patch_size=(8, 4)), ValueError, 'patch_size'),
    (PCENet, dict(arch='r101'), KeyError, "arch 'r101'"),
    (PCENet, dict(arch=dict(stem='cifar')), KeyError, 'arch dict misses'),
    (PCENet, dict(arch=dict(PCENet.arch_settings['tiny'], stem='vit')), ValueError, 'stem'),
    (PCENet, dict(arch=dict(PCENet.arch_settings['tiny'], depths=(1, 1))), ValueError,
     'per-stage'),
    (PCENet, dict(TINY, context='everywhere'), ValueError, 'context'),
    (PCENet, dict(TINY, stage_with_context=(True, )), ValueError, 'stage_with_context'),
    (PCENet, dict(TINY, out_indices=(4, )), ValueError, 'out_indices'),
    (PCENet, dict(TINY, out_indices=()), ValueError, 'out_indices'),
    (PCENet, dict(TINY, frozen_stages=5), ValueError, 'frozen_stages'),
    (PCENet, dict(TINY, in_channels=0), ValueError, 'in_channels'),
    (PCENet, dict(TINY, expert_cfg=dict(dispatch='fast')), ValueError, 'dispatch'),
    (PCENet, dict(TINY, expert_cfg=dict(kernel_size=2)), ValueError, 'kernel_size'),
    (PCENet, dict(TINY, expert_cfg=dict(kernel=3)), KeyError, 'expert_cfg'),
    (PCENet, dict(TINY, phase_cfg=dict(warmup_epochs=-1)), ValueError, 'warmup_epochs'),
    (PCENet, dict(TINY, phase_cfg=dict(warmup_iters=-5)), ValueError, 'warmup_iters'),
    (PCENet, dict(TINY, phase_cfg=dict(warmup_experts='some')), ValueError, 'warmup_experts'),
    (PCENet, dict(TINY, phase_cfg=dict(warmup_combine='max')), ValueError, 'warmup_combine'),
    (PCENet, dict(TINY, phase_cfg=dict(router='kmeans')), KeyError, 'phase_cfg'),
    (PCENet, dict(TINY, phase_cfg=dict(router_init='pca')), ValueError, 'router_init'),
    (PCENet, dict(TINY, phase_cfg=dict(target_entropy=1.5)), ValueError, 'target_entropy'),
    (PCENet, dict(TINY, loss_cfg=dict(entropie=0.1)), KeyError, 'loss_cfg'),
    (PCENet, dict(TINY, loss_cfg=dict(z=-1.0)), ValueError, 'loss_cfg'),
    (PCENet, dict(TINY, context_cfg=dict(num_heads=7)), ValueError, 'num_heads'),
    # Settings that moved into a group, or were retired (docs/history.md, 2026-12-07)
    (PCENet, dict(TINY, warmup_epochs=2), KeyError, 'now phase_cfg.warmup_epochs'),
    (PCENet, dict(TINY, warmup_iters=2), KeyError, 'now phase_cfg.warmup_iters'),
    (PCENet, dict(TINY, router_loss_weights=dict(z=0.1)), KeyError, 'now loss_cfg'),
    (PCENet, dict(TINY, log_expert_load=False), KeyError, 'now loss_cfg.log_expert_load'),
    (PCENet, dict(TINY, dispatch='dense'), KeyError, 'now expert_cfg.dispatch'),
    (PCENet, dict(TINY, switch_cfg=dict(target_entropy=0.3)), KeyError, 'now phase_cfg'),
    (PCENet, dict(TINY, ramp_iters=10), KeyError, "'ramp_iters' was retired"),
    (PCENet, dict(TINY, switch_cfg=dict(tie_noise=0.1)), KeyError, "'tie_noise' was retired"),
    (PCENet, dict(TINY, switch_cfg=dict(init_batches=2)), KeyError, "'init_batches' was retired"),
    (PCENet, dict(TINY, switch_cfg=dict(router_train='centroids')), KeyError,
     "'router_train' was retired"),
    (PCENet, dict(TINY, switch_cfg=dict(expert_norm='running')), KeyError,
     "'expert_norm' was retired"),
    (PCENet, dict(TINY, router_cfg=dict(train_logit_bias=False)), KeyError,
     "'train_logit_bias' was retired"),
    (PCENet, dict(TINY, router_cfg=dict(weighting='sum')), ValueError, 'weighting'),
    (PCENet, dict(TINY, router_cfg=dict(logit_type='dot')), ValueError, 'logit_type'),
    # The block's parts
    (PatchRouter, dict(in_channels=8, num_experts=4, top_k=5), ValueError, 'top_k'),
    (PatchRouter, dict(in_channels=8, num_experts=4, top_k=2, noise_std=-1.0), ValueError,
     'noise_std'),
    (PatchRouter, dict(in_channels=8, num_experts=4, top_k=2, bias_rate=-1.0), ValueError,
     'bias_rate'),
    (PatchRouter, dict(in_channels=8, num_experts=4, top_k=2, bias_update='ema'), ValueError,
     'bias_update'),
    (ConvExperts, dict(num_experts=0, in_channels=4, out_channels=4), ValueError,
     'num_experts'),
    (ConvExperts, dict(num_experts=2, in_channels=4, out_channels=4, kernel_size=4),
     ValueError, 'kernel_size'),
    (DeformableContext, dict(embed_dims=24, num_heads=16), ValueError, 'num_heads'),
    (DeformableContext, dict(embed_dims=16, num_heads=8), ValueError, 'value_proj_ratio'),
    (PCEBlock, dict(channels=16, expert_channels=8, patch_size=0), ValueError, 'patch_size'),
    (PCEBlock, dict(channels=16, expert_channels=8, dispatch='x'), ValueError, 'dispatch'),
    (TwoPhaseRecipe, dict(warmup_epochs=-2), ValueError, 'warmup_epochs'),
    # Augmentations
    (RandomChannelBoost, dict(prob=1.5), ValueError, 'prob'),
    (RandomChannelBoost, dict(factor=(2, 1)), ValueError, 'factor'),
    (RandomChannelBoost, dict(factor=0.5), ValueError, 'factor'),
    (RandomBlackPatches, dict(prob=-0.5), ValueError, 'prob'),
    (RandomBlackPatches, dict(num_patches=(0, 2)), ValueError, 'num_patches'),
    (RandomBlackPatches, dict(size=(0.1, 2.0)), ValueError, 'size'),
    (BatchChannelBoost, dict(factor=(3, 2)), ValueError, 'factor'),
    (BatchBlackPatches, dict(mean=[0, 0, 0]), ValueError, 'mean and std'),
    # Datasets
    (TinyImageNet, dict(data_root='/nonexistent', split='validation'), ValueError, 'split'),
    (TinyImageNet, dict(data_root='/nonexistent'), FileNotFoundError,
     '/nonexistent/wnids.txt'),
    (PCam, dict(data_root='/nonexistent', split='val'), ValueError, 'split'),
    (PCam, dict(data_root='/nonexistent'), FileNotFoundError, 'split_train_x.h5'),
]


@pytest.mark.parametrize('builder, kwargs, error, message', BAD_SETTINGS,
                         ids=[f'{b.__name__}-{m}' for b, _, _, m in BAD_SETTINGS])
def test_bad_setting_is_refused_naming_it(builder, kwargs, error, message):
    with pytest.raises(error, match=message.replace('(', r'\(').replace('[', r'\[')):
        builder(**kwargs)


@pytest.mark.parametrize('shape, message', [((1, 3, 32, 32), 'in_channels=1'),
                                            ((3, 32, 32), 'in_channels=1')])
def test_wrong_input_is_refused_at_forward(shape, message):
    with pytest.raises(ValueError, match=message):
        PCENet(arch='tiny', in_channels=1)(torch.randn(*shape))


def test_bad_setting_in_a_config_fails_when_the_model_is_built():
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs/pce_frcnn_voc.py'))
    cfg.model.backbone.top_k = 9
    with pytest.raises(Exception, match='top_k'):
        MODELS.build(cfg.model)

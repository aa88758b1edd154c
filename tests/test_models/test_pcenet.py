"""PCENet: mm's ResNet contract, presets, budgets, registration and bad settings."""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from mmpretrain.models import ResNet, ResNet_CIFAR

from pce_mm.models import PCENet


def test_r50_returns_resnet50_channels_and_strides():
    model = PCENet(arch='r50', num_experts=8, top_k=2).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 200, 312))
    assert [o.shape[1] for o in outs] == [256, 512, 1024, 2048]
    assert [tuple(o.shape[2:]) for o in outs] == [(50, 78), (25, 39), (13, 20), (7, 10)]
    assert model.out_channels == (256, 512, 1024, 2048)


def test_r18_channels_and_out_indices():
    model = PCENet(arch='r18', out_indices=(1, 3)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [128, 512]


def test_tiny_keeps_resolution_of_small_images_with_one_channel():
    model = PCENet(arch='tiny', in_channels=1).eval()
    outs = model(torch.randn(2, 1, 28, 28))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 28, 28), (128, 14, 14),
                                                  (256, 7, 7), (512, 4, 4)]


@pytest.mark.parametrize('context, per_stage', [('stage', [0, 1, 1, 1]), ('block', [0, 3, 3, 3]),
                                               ('none', [0, 0, 0, 0])])
def test_context_sits_after_each_stage_or_block_or_nowhere(context, per_stage):
    model = PCENet(arch='tiny', context=context, phase_cfg=dict(warmup_epochs=0)).train()
    counts = [sum(b.context is not None for b in model.stage_blocks(i)) for i in range(4)]
    assert counts == per_stage
    if context == 'stage':
        assert all(model.stage_blocks(i)[-1].context is not None for i in (1, 2, 3))
    calls = []
    for block in model.blocks():
        if block.context is not None:
            block.context.register_forward_hook(lambda *a: calls.append(1))
    sum(o.mean() for o in model(torch.randn(2, 3, 32, 32))).backward()
    assert len(calls) == sum(per_stage)                     # routed: every context runs
    grads = [p.grad for b in model.blocks() if b.context is not None
             for p in b.context.parameters()]
    assert all(g is not None for g in grads)


def test_arch_as_dict():
    arch = dict(PCENet.arch_settings['tiny'], depths=(1, 1, 1, 1))
    model = PCENet(arch=arch)
    assert len(model.blocks()) == 4


@pytest.mark.parametrize('kwargs, setting', [
    (dict(top_k=9, num_experts=8), 'top_k'),
    (dict(top_k=0), 'top_k'),
    (dict(patch_size=0), 'patch_size'),
    (dict(patch_size=(8, 4)), 'patch_size'),
    (dict(arch='r101'), 'arch'),
    (dict(arch=dict(stem='cifar')), 'arch'),
    (dict(context='everywhere'), 'context'),
    (dict(out_indices=(4, )), 'out_indices'),
    (dict(in_channels=0), 'in_channels'),
    (dict(expert_cfg=dict(dispatch='fast')), 'dispatch'),
])
def test_wrong_settings_fail_at_build_naming_the_setting(kwargs, setting):
    with pytest.raises((ValueError, KeyError), match=setting):
        PCENet(**dict(dict(arch='tiny'), **kwargs))


def test_wrong_input_channels_fail_at_forward_naming_in_channels():
    model = PCENet(arch='tiny', in_channels=1)
    with pytest.raises(ValueError, match='in_channels=1'):
        model(torch.randn(1, 3, 32, 32))


def test_active_params_count_only_top_k_experts():
    model = PCENet(arch='tiny', num_experts=8, top_k=2)
    counts = model.count_params()
    per_expert = sum(b.experts.num_params_per_expert() for b in model.blocks())
    assert counts['total'] == sum(p.numel() for p in model.parameters())
    assert counts['total'] - counts['active'] == 6 * per_expert
    assert PCENet(arch='tiny', num_experts=2, top_k=2).count_params()['active'] == \
        PCENet(arch='tiny', num_experts=2, top_k=2).count_params()['total']


def test_frozen_stages_and_norm_eval():
    model = PCENet(arch='tiny', frozen_stages=1, norm_eval=True)
    model.train()
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_registered_for_every_mm_package(scope):
    import importlib
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = registry.build(dict(type='PCENet', arch='tiny'))
    assert isinstance(model, PCENet)


def _flops(model, size):
    model.eval()
    analyzer = FlopAnalyzer(model, (torch.randn(1, 3, *size), ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer.total()


@pytest.mark.parametrize('arch, resnet, size', [
    ('tiny', lambda: ResNet_CIFAR(depth=18), (32, 32)),
    ('r18', lambda: ResNet(depth=18), (224, 224)),
    ('r50', lambda: ResNet(depth=50), (224, 224)),
])
def test_preset_active_flops_within_10_percent_of_resnet(arch, resnet, size):
    # The sparse path is traced as it runs, so the count is what the top-k experts,
    # routers and attention actually compute.
    ratio = _flops(PCENet(arch=arch, num_experts=8, top_k=2), size) / _flops(resnet(), size)
    assert 0.9 <= ratio <= 1.1, ratio


def test_with_cp_reaches_every_block_and_trains_both_phases():
    from helpers import NARROW_ARCH
    torch.manual_seed(0)
    model = PCENet(NARROW_ARCH, num_experts=4, top_k=2, with_cp=True).train()
    assert all(block.with_cp for block in model.blocks())
    x = torch.randn(2, 3, 32, 32)
    for phase in (1, 2):
        model.set_phase(phase)
        model.zero_grad()
        sum(o.mean() for o in model(x)).backward()
        assert all(p.grad is not None for p in model.blocks()[-1].experts.parameters())
    assert model.switched

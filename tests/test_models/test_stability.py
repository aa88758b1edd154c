"""Non-finite values are caught where they appear and reported with the block's name; any
input size gives outputs of the right shape; the z-loss pulls router logits in."""
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pce_mm.models import PCENet
from pce_mm.models.losses import router_z_loss

SLIM = dict(stem='resnet', stem_channels=8, channels=(16, 16, 32, 32),
            expert_channels=(8, 8, 16, 16), depths=(1, 1, 1, 1), strides=(1, 2, 2, 2),
            patch_sizes=(8, 4, 2, 1), stage_with_context=(False, True, True, True))


def slim_model(**kwargs) -> PCENet:
    return PCENet(SLIM, num_experts=4, top_k=2, context_cfg=dict(num_heads=4,
                                                               value_proj_ratio=0.5),
                  **kwargs).eval()


def test_nan_in_router_logits_names_the_block():
    model = slim_model()
    with torch.no_grad():
        model.layer3[1].router.mlp[2].bias[1] = float('nan')
    with pytest.raises(FloatingPointError, match=r'first in router logits of block backbone\.layer3\.1'):
        model(torch.randn(1, 3, 64, 64))


def test_inf_in_an_expert_names_the_block_and_the_experts():
    model = slim_model()
    with torch.no_grad():
        for expert in model.layer2[1].experts:
            expert.conv.weight[0, 0, 1, 1] = float('inf')
    with pytest.raises(FloatingPointError, match=r'first in expert outputs of block backbone\.layer2\.1'):
        model(torch.randn(1, 3, 64, 64))


def test_non_finite_input_is_reported_at_the_stem():
    x = torch.randn(1, 3, 32, 32)
    x[0, 0, 3, 3] = float('nan')
    with pytest.raises(FloatingPointError, match='stem output'):
        slim_model()(x)


def test_the_check_can_be_turned_off():
    model = slim_model(check_finite=False)
    with torch.no_grad():
        model.layer3[1].router.mlp[2].bias[1] = float('nan')
    assert torch.isnan(model(torch.randn(1, 3, 64, 64))[-1]).any()


@settings(max_examples=25, deadline=None)
@given(height=st.integers(1, 1333), width=st.integers(1, 1333))
@example(height=1, width=1)
@example(height=1333, width=1333)
@example(height=1, width=1333)
@example(height=997, width=3)
def test_any_input_size_gives_maps_of_the_strided_size(height, width):
    model = slim_model()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, height, width))
    h, w = height, width
    h, w = -(-h // 2), -(-w // 2)                        # 7x7 stride-2 convolution
    h, w = -(-h // 2), -(-w // 2)                        # 3x3 stride-2 max pool
    expected = []
    for stride, channels in zip(SLIM['strides'], SLIM['channels']):
        h, w = -(-h // stride), -(-w // stride)         # average pool, ceil mode
        expected.append((1, channels, h, w))
    assert [tuple(o.shape) for o in outs] == expected


def test_z_loss_gradient_pulls_the_router_log_partition_to_zero():
    logits = (torch.randn(2, 16, 8) * 20 + 30).requires_grad_()
    before = torch.logsumexp(logits.detach(), -1).abs().max()
    opt = torch.optim.SGD([logits], lr=20.0)
    for _ in range(50):
        opt.zero_grad()
        router_z_loss(logits).backward()
        opt.step()
    assert torch.logsumexp(logits.detach(), -1).abs().max() < before / 10

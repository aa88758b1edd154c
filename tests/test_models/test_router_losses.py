"""Router losses: their values, and that attaching them to the backbone's output changes
the gradients exactly as adding them to the loss does, in fp32, bf16 and fp16 with a
GradScaler."""
import copy
import math

import pytest
import torch

from pce_mm.models import PCENet
from pce_mm.models.losses import (AttachAuxLoss, expert_load, load_balance, router_entropy,
                                  router_z_loss)

SMALL = dict(PCENet.arch_settings['tiny'], depths=(1, 1, 1, 1))
WEIGHTS = dict(entropy=0.3, balance=0.2, z=0.1)


def test_loss_values_on_known_routings():
    uniform = torch.full((1, 4, 4), 0.25)
    assert router_entropy(uniform) == pytest.approx(math.log(4))
    onehot = torch.eye(4)[None]
    assert router_entropy(onehot) == pytest.approx(0, abs=1e-6)
    spread = torch.tensor([[[0], [1], [2], [3]]])
    assert load_balance(uniform, spread) == pytest.approx(1.0)      # balanced minimum
    collapsed = torch.zeros(1, 4, 1, dtype=torch.long)
    assert load_balance(onehot[:, [0, 0, 0, 0]], collapsed) == pytest.approx(4.0)
    torch.testing.assert_close(expert_load(collapsed, 4), torch.tensor([1., 0, 0, 0]))
    assert router_z_loss(torch.zeros(1, 2, 4)) == pytest.approx(math.log(4) ** 2)


def test_attach_aux_loss_is_identity_forward_with_scaled_aux_gradient():
    x = torch.randn(3, requires_grad=True)
    w = torch.tensor(2.0, requires_grad=True)
    y = AttachAuxLoss.apply(x, w * 5, 4.0)
    torch.testing.assert_close(y, x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(3))
    assert w.grad == 20.0                                   # d(w * 5)/dw * grad_scale


def explicit_aux_loss(routings) -> torch.Tensor:
    mean = lambda values: torch.stack(values).mean()  # noqa: E731
    return (WEIGHTS['entropy'] * mean([router_entropy(r.probs) for r in routings])
            + WEIGHTS['balance'] * mean([load_balance(r.probs, r.indices) for r in routings])
            + WEIGHTS['z'] * mean([router_z_loss(r.logits) for r in routings]))


def gradients(model, x, autocast_dtype=None, scale=None, attach=True):
    model.zero_grad()
    routings = []
    for block in model.blocks():
        block.router.register_forward_hook(lambda m, i, out: routings.append(out))
    with torch.autocast('cpu', dtype=autocast_dtype, enabled=autocast_dtype is not None):
        outs = model(x)
        loss = sum(o.float().square().mean() for o in outs)
    if not attach:
        loss = loss + explicit_aux_loss(routings)
    if scale is not None:
        scaler = torch.amp.GradScaler('cpu', init_scale=scale)
        scaler.scale(loss).backward()
    else:
        loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize('precision', ['fp32', 'bf16', 'fp16-scaler'])
def test_attached_losses_give_the_gradient_of_the_explicit_sum(precision):
    dtype = {'fp32': None, 'bf16': torch.bfloat16, 'fp16-scaler': torch.float16}[precision]
    scale = 1024.0 if precision == 'fp16-scaler' else None
    attached = PCENet(SMALL, loss_cfg=WEIGHTS, phase_cfg=dict(warmup_epochs=0)).train()
    explicit = copy.deepcopy(attached)
    explicit.router_losses.weights = dict(entropy=0, balance=0, z=0)   # nothing attached
    attached.aux_loss_scale = scale                      # what RouterLossScaleHook sets
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    got = gradients(attached, x, dtype, scale)
    torch.manual_seed(1)
    want = gradients(explicit, x, dtype, scale, attach=False)
    assert got.keys() == want.keys()
    router = [n for n in got if '.router.' in n]
    assert router and all(got[n].abs().sum() > 0 for n in router)
    # Relative error of each parameter's gradient: low precision rounds both paths apart.
    tol = 1e-4 if dtype is None else 2e-2

    def error(grads, name):
        return float((grads[name] - want[name]).norm() / want[name].norm().clamp_min(1e-12))

    for name in got:
        assert error(got, name) < tol, name
    # Without the router losses, or under a loss scale the router losses miss, the
    # router's gradient differs: the comparison can fail.
    torch.manual_seed(1)
    plain = gradients(explicit, x, dtype, scale)
    assert max(error(plain, n) for n in router) > 10 * tol
    if scale is not None:
        attached.aux_loss_scale = None
        torch.manual_seed(1)
        unscaled = gradients(attached, x, dtype, scale)
        assert max(error(unscaled, n) for n in router) > 10 * tol


def test_phase_one_keeps_router_and_attention_in_the_graph_with_zero_gradient():
    model = PCENet(SMALL, phase_cfg=dict(warmup_epochs=0)).train()
    model.set_phase(1)
    sum(o.mean() for o in model(torch.randn(2, 3, 32, 32))).backward()
    for block in model.blocks():
        assert block.last_routing is None
        for part in (block.router, block.context):
            for p in (part.parameters() if part is not None else []):
                assert p.grad is not None and not p.grad.any()
        assert block.experts.experts[0].conv.weight.grad.any()


@pytest.mark.parametrize('experts, combine, calls', [('all', 'mean', 8), ('random', 'sum', 8)])
def test_phase_one_runs_experts_without_router(experts, combine, calls):
    model = PCENet(SMALL, phase_cfg=dict(warmup_experts=experts,
                                         warmup_combine=combine)).train()
    model.set_phase(1)
    block = model.blocks()[0]
    seen = []
    for expert in block.experts:
        expert.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    routed = []
    block.router.register_forward_hook(lambda *a: routed.append(1))
    model(torch.randn(2, 3, 32, 32))
    assert len(seen) == calls and not routed
    if experts == 'all':                                 # each expert over the whole map
        assert seen == [2] * 8
    else:                                                # k = 2 random experts per patch
        assert sum(seen) == 2 * 16 * 2


def test_phase_settings_are_validated():
    with pytest.raises(ValueError, match='phase_cfg.warmup_experts'):
        PCENet(SMALL, phase_cfg=dict(warmup_experts='some'))
    with pytest.raises(ValueError, match='phase_cfg.warmup_combine'):
        PCENet(SMALL, phase_cfg=dict(warmup_combine='max'))
    with pytest.raises(ValueError, match='phase_cfg.warmup_epochs'):
        PCENet(SMALL, phase_cfg=dict(warmup_epochs=-1))
    with pytest.raises(KeyError, match='loss_cfg'):
        PCENet(SMALL, loss_cfg=dict(entropie=0.1))
    with pytest.raises(ValueError, match='phase'):
        PCENet(SMALL).set_phase(3)

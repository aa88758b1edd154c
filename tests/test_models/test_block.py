"""PCE block: any input size, gradients to every part, the CPU deformable-attention path,
with_cp."""
import pytest
import torch
from mmcv.ops import multi_scale_deform_attn as msda

from pce_mm.models import DeformableContext, PCEBlock


@pytest.mark.parametrize('size', [(1, 1), (3, 2), (7, 7), (8, 8), (9, 17), (31, 4)])
@pytest.mark.parametrize('dispatch', ['sparse', 'dense'])
def test_block_keeps_any_input_size(size, dispatch):
    block = PCEBlock(16, 8, num_experts=4, top_k=2, patch_size=8, dispatch=dispatch,
                     with_context=True, context_cfg=dict(num_heads=4))
    out = block(torch.randn(2, 16, *size))
    assert out.shape == (2, 16, *size)


def test_gradients_reach_router_experts_and_attention():
    block = PCEBlock(16, 8, num_experts=4, top_k=2, patch_size=4, with_context=True,
                     context_cfg=dict(num_heads=4))
    block(torch.randn(2, 16, 12, 12)).square().mean().backward()
    parts = {'router': block.router, 'experts': block.experts, 'context': block.context,
             'combine': block.combine}
    for name, part in parts.items():
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name


def test_block_without_residual_or_context():
    block = PCEBlock(16, 8, num_experts=4, top_k=1, patch_size=4, residual=False)
    assert block.context is None
    assert block(torch.randn(1, 16, 6, 10)).shape == (1, 16, 6, 10)


def test_context_runs_mmcv_pytorch_path_on_cpu(monkeypatch):
    calls = []
    original = msda.multi_scale_deformable_attn_pytorch
    monkeypatch.setattr(msda, 'multi_scale_deformable_attn_pytorch',
                        lambda *a: calls.append(1) or original(*a))
    context = DeformableContext(32, num_heads=4)
    x = torch.randn(2, 32, 5, 7)
    out = context(x)
    assert calls and out.shape == x.shape and not torch.allclose(out, x)


def test_context_reference_points_are_pixel_centres():
    # With zero sampling offsets every point samples its own reference point; identity
    # projections make the attention return the (layer-normalised) value there. Reference
    # points at pixel centres sample each pixel exactly: the output is
    # x + out_norm(query_norm(x)).
    context = DeformableContext(16, num_heads=4, value_proj_ratio=1.0).eval()
    attn = context.attn
    with torch.no_grad():
        for lin in (attn.sampling_offsets, attn.attention_weights):
            lin.weight.zero_()
            lin.bias.zero_()
        for lin in (attn.value_proj, attn.output_proj):
            lin.weight.copy_(torch.eye(16))
            lin.bias.zero_()
        x = torch.randn(2, 16, 6, 9)
        out = context(x)
        query = context.query_norm(x.flatten(2).transpose(1, 2)).transpose(1, 2)
        expected = x + context.out_norm(query.reshape(x.shape))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_block_rejects_bad_settings():
    with pytest.raises(ValueError, match='patch_size'):
        PCEBlock(16, 8, patch_size=0)
    with pytest.raises(ValueError, match='dispatch'):
        PCEBlock(16, 8, dispatch='fast')
    with pytest.raises(ValueError, match='kernel_size'):
        PCEBlock(16, 8, expert_kernel=2)
    with pytest.raises(ValueError, match='num_heads'):
        PCEBlock(24, 8, with_context=True, context_cfg=dict(num_heads=16))
    with pytest.raises(ValueError, match='value_proj_ratio'):
        PCEBlock(16, 8, with_context=True, context_cfg=dict(num_heads=8))


@pytest.mark.parametrize('warmup', [True, False])
def test_with_cp_gives_the_same_output_and_gradients(warmup):
    torch.manual_seed(0)
    # bias_rate=0: the balancing bias would move between the two steps and change the choice
    block = PCEBlock(32, 12, num_experts=4, top_k=2, patch_size=2, with_context=True,
                     warmup_experts='tied', router_cfg=dict(bias_rate=0)).train()
    x = torch.randn(2, 32, 9, 10, requires_grad=True)
    results = []
    for with_cp in (False, True):
        block.with_cp = with_cp
        block.zero_grad()
        x.grad = None
        out = block(x, warmup=warmup)
        loss = out.square().sum()
        if not warmup:                 # the router's gradient, through the kept routing
            loss = loss + block.last_routing.probs.square().sum()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in block.named_parameters() if p.grad is not None}
        results.append((out.detach(), x.grad.clone(), grads, block.finite.clone()))
    (out, gx, grads, finite), (out_cp, gx_cp, grads_cp, finite_cp) = results
    torch.testing.assert_close(out_cp, out)
    torch.testing.assert_close(gx_cp, gx)
    assert grads.keys() == grads_cp.keys() and any('router' in n for n in grads) != warmup
    for name in grads:
        torch.testing.assert_close(grads_cp[name], grads[name], msg=name)
    assert torch.equal(finite_cp, finite)


def test_with_cp_keeps_fewer_activations_for_backward():
    torch.manual_seed(0)
    block = PCEBlock(32, 24, num_experts=4, top_k=2, patch_size=2, with_context=True).train()
    x = torch.randn(2, 32, 16, 16, requires_grad=True)
    kept = {}
    for with_cp in (False, True):
        block.with_cp = with_cp
        saved = {}

        def pack(tensor):
            saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            block(x).sum().backward()
        kept[with_cp] = sum(saved.values())
    assert kept[True] < 0.5 * kept[False]

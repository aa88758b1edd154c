"""The switch to routing: tied experts make it seamless, the routers start from k-means of
their patches, it runs once and is recorded in the checkpoint; and the routing knobs
(weighting, logit noise, loss-free balancing bias) act as their formulas say."""
import copy

import pytest
import torch

from pce_mm.analysis.switch import switch_gap
from pce_mm.models import PatchRouter, PCENet
from pce_mm.models.router import balancing_bias, kmeans

SMALL = dict(PCENet.arch_settings['tiny'], depths=(1, 2, 1, 1))


def trained_in_phase_one(steps: int = 3, **kwargs) -> PCENet:
    """A small PCENet after ``steps`` SGD steps in phase 1, on random images."""
    model = PCENet(SMALL, **kwargs)
    model.init_weights()
    model.train().set_phase(1)
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        optim.zero_grad()
        sum(o.square().mean() for o in model(torch.randn(4, 3, 32, 32))).backward()
        optim.step()
    return model


def expert_states(block) -> list:
    return [expert.state_dict() for expert in block.experts]


def test_tied_experts_start_identical_and_phase_one_trains_expert_zero_alone():
    model = PCENet(SMALL)
    model.init_weights()
    for block in model.blocks():
        first, *rest = expert_states(block)
        for state in rest:
            for key, value in state.items():
                torch.testing.assert_close(value, first[key], rtol=0, atol=0)
    before = copy.deepcopy(model.blocks()[0].experts)
    trained = trained_in_phase_one()
    block = trained.blocks()[0]
    assert not torch.equal(block.experts.experts[0].conv.weight,
                           before.experts[0].conv.weight)
    assert trained.last_phase == 1 and not trained.switched


@pytest.mark.parametrize('router_init', ['kmeans', None])
def test_switch_reproduces_phase_one_exactly_under_any_routing(router_init):
    model = trained_in_phase_one(phase_cfg=dict(router_init=router_init))
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        warm = model(x)                      # trained last in phase 1: runs in phase 1
        model.set_phase(2)
        routed = model(x)                    # switches first
    assert model.switched and model.blocks()[0].last_routing is not None
    for block in model.blocks():
        first, *rest = expert_states(block)
        for state in rest:
            for key, value in state.items():
                torch.testing.assert_close(value, first[key], rtol=0, atol=0)
    for w, r in zip(warm, routed):
        torch.testing.assert_close(r, w, rtol=1e-5, atol=1e-5)
    assert max(gap for _, gap in switch_gap(model, x)) < 1e-5


@pytest.mark.parametrize('logit_type', ['linear', 'cosine'])
def test_kmeans_router_init_is_confident_balanced_and_depends_on_content(logit_type):
    torch.manual_seed(0)
    router = PatchRouter(16, num_experts=8, top_k=2, logit_type=logit_type)
    content = torch.cat([torch.randn(2, 32, 16) + 3 * torch.randn(1, 1, 16)
                         for _ in range(4)], dim=1)                   # 4 content clusters
    centres = torch.rand(128, 2)
    uniform = router(content, centres).probs
    assert (uniform.max(-1).values - 1 / 8).abs().max() < 0.05
    fit = router.init_from_data(content, centres, target_entropy=0.5)
    routing = router.eval()(content, centres)
    entropy = -(routing.probs * routing.probs.log()).sum(-1).mean() / torch.log(torch.tensor(8.))
    assert abs(fit['entropy'] - 0.5) < 0.01 and abs(float(entropy) - 0.5) < 0.01
    assert fit['busiest'] < 1.5                       # top-2 loads balanced on the init data
    assert routing.indices[..., 0].unique().numel() >= 6
    restored = PatchRouter(16, num_experts=8, top_k=2, logit_type=logit_type).eval()
    restored.load_state_dict(router.state_dict())     # the cosine scale is in the state dict
    torch.testing.assert_close(restored(content, centres).probs, routing.probs)


def test_cosine_logits_stay_within_their_scale_and_their_bias_does_not_train():
    router = PatchRouter(8, num_experts=4, top_k=2, logit_type='cosine').train()
    with torch.no_grad():
        router.mlp[-1].weight.mul_(1e4)               # a linear router's logits would explode
        router.mlp[-1].bias.copy_(torch.tensor([0.5, 0.0, -0.5, 0.0]))
    content, centres = 100 * torch.randn(2, 6, 8), torch.rand(6, 2)
    logits = router.logits(content, centres)
    scale = float(router.cosine_scale)
    assert (logits - router.mlp[-1].bias).abs().max() <= scale * (1 + 1e-6)
    hidden = router.hidden(content, centres)
    cosine = torch.nn.functional.cosine_similarity(
        hidden[..., None, :], router.mlp[-1].weight, dim=-1)
    torch.testing.assert_close(logits, scale * cosine + router.mlp[-1].bias)
    router(content, centres).probs.square().sum().backward()
    assert router.mlp[-1].bias.grad is None and router.mlp[-1].weight.grad is not None


def test_the_linear_routers_logit_bias_trains_from_its_kmeans_init():
    router = PatchRouter(8, num_experts=4, top_k=2)
    content, centres = torch.randn(2, 6, 8), torch.rand(6, 2)
    router.init_from_data(content, centres, generator=torch.Generator().manual_seed(0))
    init = router.mlp[-1].bias.detach().clone()
    assert init.abs().sum() > 0                           # the k-means init set it
    optimizer = torch.optim.SGD(router.parameters(), lr=1.0)
    router.train()(content, centres).probs[..., 0].sum().backward()
    optimizer.step()
    assert not torch.equal(router.mlp[-1].bias, init)
    assert router.mlp[-1].weight.grad is not None


def test_kmeans_finds_separated_clusters_and_refuses_too_few_points():
    points = torch.cat([torch.randn(20, 3) * 0.1 + c for c in (0.0, 5.0, -5.0)])
    centroids = kmeans(points, 3, generator=torch.Generator().manual_seed(0))
    assert sorted(round(float(c)) for c in centroids.mean(1)) == [-5, 0, 5]
    with pytest.raises(ValueError, match='at least num_experts'):
        kmeans(points[:2], 3)


def test_router_init_draws_a_seeded_sample_of_at_most_max_points_patches():
    torch.manual_seed(0)
    router = PatchRouter(16, num_experts=8, top_k=2)
    content, centres = torch.randn(2, 40, 16), torch.rand(40, 2)        # 80 patches
    fits = []
    for max_points in (30, 30, 80):
        twin = copy.deepcopy(router)
        twin.init_from_data(content, centres, max_points=max_points,
                            generator=torch.Generator().manual_seed(0))
        fits.append(twin.mlp[-1].weight)
    torch.testing.assert_close(fits[0], fits[1])          # the same sample every time
    assert not torch.equal(fits[0], fits[2])              # a sample, not every patch


def test_balancing_bias_gives_every_column_its_share_of_the_top_k():
    scores = torch.randn(800, 4) + torch.tensor([3.0, 1.0, 0.0, -2.0])   # column 0 leads
    for k in (1, 2):
        load = torch.bincount((scores + balancing_bias(scores, k)).topk(k, -1).indices
                              .reshape(-1), minlength=4)
        assert load.max() / load.float().mean() < 1.1


def test_switch_runs_once_and_the_checkpoint_records_it():
    model = trained_in_phase_one()
    model.set_phase(2)
    model(torch.randn(4, 3, 32, 32))
    assert model.switched and model.last_phase == 2
    routers = copy.deepcopy([b.router.state_dict() for b in model.blocks()])
    state = model.state_dict()
    assert state['_extra_state'].tolist() == [2, 1]                # last_phase, switched

    restored = PCENet(SMALL)
    restored.load_state_dict(state)
    restored.train()            # outside a Runner: the phase it last trained in, routed
    restored(torch.randn(4, 3, 32, 32))
    for block, saved in zip(restored.blocks(), routers):
        torch.testing.assert_close(block.router.mlp[-1].weight, saved['mlp.2.weight'])


def test_validation_before_the_switch_stays_in_phase_one():
    model = trained_in_phase_one().eval()
    model.set_phase(None)
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('validation_before_switch')
    try:
        hub.update_info_dict(dict(loop_stage='val', iter=10, epoch=10))
        model(torch.randn(2, 3, 32, 32))
        assert not model.switched and model.blocks()[0].last_routing is None
    finally:
        MessageHub.get_instance('after_validation_before_switch')


def test_renormalised_weights_give_no_task_gradient_between_identical_experts():
    """With renormalised top-k weights a patch's logit gradient is ``w_a w_b (g_a - g_b)``:
    zero for identical experts. Raw softmax weights keep a gradient through ``sum_k p``."""
    model = trained_in_phase_one(steps=1)
    model.set_phase(2)
    model.router_losses.weights = dict(entropy=0, balance=0, z=0)
    # In eval: a training forward would give each expert the statistics of its own patches.
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    grads = {}
    for weighting in ('renorm', 'softmax'):
        for block in model.blocks():
            block.router.weighting = weighting
            block.router.zero_grad()
        model(x)[-1].sum().backward()
        grads[weighting] = model.blocks()[1].router.mlp[-1].weight.grad.abs().max()
    assert grads['renorm'] < 1e-3 * grads['softmax'], grads


def test_logit_noise_is_added_in_training_only():
    router = PatchRouter(8, num_experts=4, top_k=2, noise_std=0.5).train()
    content, centres = torch.randn(1, 6, 8), torch.rand(6, 2)
    logits = router.logits(content, centres)
    torch.manual_seed(3)
    noisy = router(content, centres)
    torch.manual_seed(3)
    expected = (logits + 0.5 * torch.randn_like(logits)).softmax(-1)
    torch.testing.assert_close(noisy.probs, expected)
    torch.testing.assert_close(router.eval()(content, centres).probs, logits.softmax(-1))


def test_selection_bias_moves_towards_underloaded_experts_and_only_picks():
    router = PatchRouter(8, num_experts=4, top_k=1, bias_rate=0.1, bias_update='sign').train()
    with torch.no_grad():
        router.mlp[-1].bias.copy_(torch.tensor([3.0, 0.0, 0.0, 0.0]))   # expert 0 takes all
    content, centres = torch.randn(1, 6, 8), torch.rand(6, 2)
    routing = router(content, centres)
    assert routing.indices.eq(0).all()
    torch.testing.assert_close(router.selection_bias, torch.tensor([-0.1, 0.1, 0.1, 0.1]))
    router.selection_bias.copy_(torch.tensor([-10.0, 0.0, 0.0, 10.0]))
    biased = router.eval()(content, centres)
    assert biased.indices.eq(3).all()                     # the bias chooses ...
    torch.testing.assert_close(biased.weights, torch.ones(1, 6, 1))
    torch.testing.assert_close(biased.probs, router.logits(content, centres).softmax(-1))
    assert 'selection_bias' in dict(router.named_buffers())   # ... and is no parameter


def test_proportional_bias_steps_by_the_relative_load_error_and_stops_at_balance():
    router = PatchRouter(8, num_experts=4, top_k=1, bias_rate=0.5).train()   # proportional
    with torch.no_grad():
        router.mlp[-1].bias.copy_(torch.tensor([3.0, 0.0, 0.0, 0.0]))   # expert 0 takes all
    content, centres = torch.randn(1, 8, 8), torch.rand(8, 2)
    router(content, centres)
    # Loads (8, 0, 0, 0), mean 2: errors (-6, 2, 2, 2) / 2, times the rate.
    torch.testing.assert_close(router.selection_bias, torch.tensor([-1.5, 0.5, 0.5, 0.5]))
    router.update_bias(torch.arange(4).repeat(2))                 # balanced: no step
    torch.testing.assert_close(router.selection_bias, torch.tensor([-1.5, 0.5, 0.5, 0.5]))


def test_renormalised_weights_stay_finite_when_the_bias_picks_improbable_experts():
    router = PatchRouter(8, num_experts=4, top_k=2).eval()
    with torch.no_grad():
        router.mlp[-1].bias.copy_(torch.tensor([300.0, 0.0, 0.0, 0.0]))
        router.selection_bias.copy_(torch.tensor([-1e3, 0.0, 0.0, 0.0]))
    routing = router(torch.randn(1, 5, 8), torch.rand(5, 2))
    assert routing.probs.gather(-1, routing.indices).max() == 0     # underflowed
    assert not routing.indices.eq(0).any()
    torch.testing.assert_close(routing.weights.sum(-1), torch.ones(1, 5))
    router.selection_bias.zero_()                       # where nothing underflows, the
    torch.nn.init.normal_(router.mlp[-1].weight)        # kept probabilities renormalised
    routing = router(torch.randn(1, 5, 8), torch.rand(5, 2))
    top = routing.probs.gather(-1, routing.indices)
    torch.testing.assert_close(routing.weights, top / top.sum(-1, keepdim=True))


def test_softmax_weighting_keeps_raw_probabilities():
    router = PatchRouter(8, num_experts=6, top_k=2, weighting='softmax')
    torch.nn.init.normal_(router.mlp[-1].weight)
    routing = router(torch.randn(1, 5, 8), torch.rand(5, 2))
    torch.testing.assert_close(routing.weights, routing.probs.gather(-1, routing.indices))
    assert (routing.weights.sum(-1) < 1).all()


def test_routed_maps_reach_a_stride_blind_op_as_phase_one_maps_do():
    """The routed path computes in channels-last memory; the backbone hands necks and heads
    contiguous NCHW maps, which mmcv's CPU RoIAlign (it ignores strides) needs: before, a
    phase-1 checkpoint's detections turned to garbage the moment it was run routed."""
    from mmcv.ops import RoIAlign
    model = trained_in_phase_one().eval()
    x = torch.randn(2, 3, 32, 32)
    rois = torch.tensor([[0, 2.0, 3.0, 20.0, 25.0], [1, 0.0, 0.0, 31.0, 31.0]])
    align = RoIAlign(output_size=4, spatial_scale=1.0, sampling_ratio=2)
    with torch.no_grad():
        warm = model(x)
        model.set_phase(2)
        routed = model(x)
    assert all(o.is_contiguous() for o in warm + routed)
    torch.testing.assert_close(align(routed[0], rois), align(warm[0], rois),
                               rtol=1e-5, atol=1e-5)
    model.train()
    assert all(o.is_contiguous() for o in model(x))

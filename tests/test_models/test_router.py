"""Router: softmax, top-k, renormalised weights, position features in [0, 1]."""
import pytest
import torch

from pce_mm.models import PatchGrid, PatchRouter


def test_router_keeps_top_k_renormalised():
    router = PatchRouter(16, num_experts=6, top_k=3)
    torch.nn.init.normal_(router.mlp[-1].weight)           # non-uniform routing
    routing = router(torch.randn(2, 10, 16), torch.rand(10, 2))
    assert routing.logits.shape == routing.probs.shape == (2, 10, 6)
    assert routing.weights.shape == routing.indices.shape == (2, 10, 3)
    torch.testing.assert_close(routing.probs.sum(-1), torch.ones(2, 10))
    torch.testing.assert_close(routing.weights.sum(-1), torch.ones(2, 10))
    kept = routing.probs.gather(-1, routing.indices)
    assert torch.all(kept.min(-1).values >= routing.probs.topk(3, -1).values[..., -1])
    torch.testing.assert_close(routing.weights, kept / kept.sum(-1, keepdim=True))


def test_routing_depends_on_position():
    router = PatchRouter(8, num_experts=4, top_k=1)
    torch.nn.init.normal_(router.mlp[-1].weight)
    content = torch.randn(1, 1, 8).expand(1, 5, 8)         # same content everywhere
    logits = router.logits(content, torch.rand(5, 2))
    assert not torch.allclose(logits[0, 0], logits[0, 1])


def test_content_only_router_ignores_position_and_reads_content():
    router = PatchRouter(8, num_experts=4, top_k=1, position=False)
    torch.nn.init.normal_(router.mlp[-1].weight)
    assert router.mlp[0].in_features == 8                   # no position features at all
    content = torch.randn(1, 1, 8).expand(1, 5, 8)
    logits = router.logits(content, torch.rand(5, 2))
    torch.testing.assert_close(logits[0, 0].expand(5, 4), logits[0])
    other = router.logits(torch.randn(1, 5, 8), torch.rand(5, 2))
    assert not torch.allclose(other[0, 0], other[0, 1])


def test_position_features_are_resolution_independent():
    router = PatchRouter(8, num_experts=4, top_k=1)
    small = PatchGrid(16, 16, patch=4).centres()           # 4 x 4 grid
    large = PatchGrid(64, 64, patch=16).centres()          # same grid at 4x the size
    torch.testing.assert_close(router.position_features(small),
                               router.position_features(large))


@pytest.mark.parametrize('top_k', [0, 5])
def test_router_rejects_top_k_outside_1_to_e(top_k):
    with pytest.raises(ValueError, match='top_k'):
        PatchRouter(8, num_experts=4, top_k=top_k)

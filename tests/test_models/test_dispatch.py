"""Sparse dispatch: exact (halo), equal to the dense reference, and cost growing with k."""
import pytest
import torch
import torch.nn.functional as F

from pce_mm.analysis import SavedForBackward
from pce_mm.models import PCEBlock, PatchGrid, dense_dispatch, sparse_dispatch
from pce_mm.models.experts import ConvExperts, Expert


def distinct_routing(b, n, e, k):
    indices = torch.stack([torch.randperm(e)[:k] for _ in range(b * n)]).view(b, n, k)
    weights = torch.rand(b, n, k).softmax(-1)
    return indices, weights


@pytest.mark.parametrize('size', [(16, 16), (13, 21), (3, 5), (1, 1), (40, 9)])
@pytest.mark.parametrize('kernel', [1, 3, 5])
def test_halo_makes_patch_output_equal_full_map_conv(size, kernel):
    # float64, as the other exactness tests: 3x3 experts on patches of 4 are Winograd's.
    experts = ConvExperts(1, 6, 5, kernel, norm_cfg=None, act_cfg=None).double()
    x = torch.randn(2, 6, *size, dtype=torch.float64)
    grid = PatchGrid(*size, patch=4)
    ones = torch.ones(2, grid.num_patches, 1, dtype=torch.float64)
    out = sparse_dispatch(x, grid, experts, ones.long() * 0, ones, experts.halo)
    conv = experts.experts[0].conv
    ref = F.conv2d(x, conv.weight, conv.bias, padding=kernel // 2)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize('size', [(16, 16), (13, 21), (2, 3), (33, 8)])
def test_sparse_equals_dense_dispatch(size):
    experts = ConvExperts(8, 6, 4, 3).eval().double()   # float64: see the halo test
    x = torch.randn(2, 6, *size, dtype=torch.float64)
    grid = PatchGrid(*size, patch=4)
    indices, weights = distinct_routing(2, grid.num_patches, 8, 2)
    weights = weights.double()
    with torch.no_grad():
        sparse = sparse_dispatch(x, grid, experts, indices, weights, 1)
        dense = dense_dispatch(x, grid, experts, indices, weights, 1)
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-10)


@pytest.mark.parametrize('size', [(32, 32), (19, 27), (5, 3)])
def test_block_sparse_equals_dense_in_eval(size, randomise_norm_stats):
    block = PCEBlock(32, 16, num_experts=8, top_k=2, patch_size=4, with_context=True)
    # float64: the experts convolve patches of 4 by Winograd's algorithm and the dense
    # reference by oneDNN's, which round float32 differently (tests/test_models/test_winograd.py).
    randomise_norm_stats(block).eval().double()
    x = torch.randn(2, 32, *size, dtype=torch.float64)
    with torch.no_grad():
        sparse = block(x)
        block.dispatch = 'dense'
        dense = block(x)
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-10)


@pytest.mark.parametrize('top_k', [1, 2, 4])
def test_sparse_dispatch_runs_each_patch_through_k_experts_only(top_k):
    experts = ConvExperts(8, 4, 4, 3)
    seen = []
    for expert in experts:
        expert.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    grid = PatchGrid(24, 20, patch=4)
    indices, weights = distinct_routing(3, grid.num_patches, 8, top_k)
    sparse_dispatch(torch.randn(3, 4, 24, 20), grid, experts, indices, weights, 1)
    assert len(seen) == 8                                  # every expert called once
    assert sum(seen) == 3 * grid.num_patches * top_k       # on k patches' worth of input


def test_every_expert_gets_gradient_even_without_patches():
    experts = ConvExperts(4, 4, 4, 3)
    grid = PatchGrid(8, 8, patch=4)
    indices = torch.zeros(1, grid.num_patches, 1, dtype=torch.long)   # all to expert 0
    out = sparse_dispatch(torch.randn(1, 4, 8, 8), grid, experts, indices,
                          torch.ones(1, grid.num_patches, 1), 1)
    out.sum().backward()
    for expert in experts:
        assert expert.conv.weight.grad is not None


def test_grid_pool_is_mean_of_pixels_inside_the_map():
    x = torch.randn(2, 3, 10, 7)
    grid = PatchGrid(10, 7, patch=4)                       # 3 x 2 cells, bottom/right partial
    pooled = grid.pool(x)
    assert pooled.shape == (2, 6, 3)
    torch.testing.assert_close(pooled[:, 5], x[:, :, 8:10, 4:7].mean((2, 3)))
    torch.testing.assert_close(pooled[:, 0], x[:, :, 0:4, 0:4].mean((2, 3)))


@pytest.mark.parametrize('size', [(16, 16), (10, 7)])
def test_grid_pool_keeps_nothing_for_backward(size):
    x = torch.randn(2, 3, *size, requires_grad=True)
    with SavedForBackward() as saved:
        PatchGrid(*size, patch=4).pool(x)
    assert all(size < x[0, 0].nbytes for size in saved.storages.values())  # avg_pool2d: a copy


def test_sparse_dispatch_keeps_no_tensor_of_all_the_experts_outputs():
    # What backward needs of the outputs is each expert's own (kept by its activation); a
    # concatenation of all of them (once for the weighting, once for index_add_'s source)
    # is the block's map k times over, kept for nothing.
    experts = ConvExperts(4, 8, 8, 3).train()
    grid = PatchGrid(16, 16, patch=4)
    indices, weights = distinct_routing(2, grid.num_patches, 4, 2)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    with SavedForBackward() as saved:
        out = sparse_dispatch(x, grid, experts, indices, weights.requires_grad_(), 1)
    all_outputs = indices.numel() * 4 * 4 * 8 * x.element_size()       # m * p * p * c_out
    assert all_outputs not in saved.storages.values()
    out.sum().backward()
    assert x.grad.abs().sum() > 0 and weights.grad.abs().sum() > 0


@pytest.mark.parametrize('winograd_min_tiles', [1, None])      # Winograd's and oneDNN's
def test_sparse_dispatch_gathers_the_tiles_again_in_backward_instead_of_keeping_them(
        winograd_min_tiles, monkeypatch):
    if winograd_min_tiles is not None:
        monkeypatch.setattr(Expert, 'winograd_min_tiles', winograd_min_tiles)
    experts = ConvExperts(4, 8, 8, 3).train()
    grid = PatchGrid(16, 16, patch=4)
    indices, weights = distinct_routing(2, grid.num_patches, 4, 2)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    h = x * 1                                              # the block's reduced map
    with SavedForBackward() as saved:
        out = sparse_dispatch(h, grid, experts, indices, weights, 1)
    tiles = indices.numel() * 6 * 6 * 8 * x.element_size()   # m * q * q * c, halo 1
    assert tiles not in saved.storages.values()
    upstream = torch.randn(out.shape)
    (out * upstream).sum().backward()                      # gradients: test_sparse_gradients_*
    out = sparse_dispatch(h, grid, experts, indices, weights, 1)
    h.detach().add_(1)                                     # the map changed in place: refused
    with pytest.raises(RuntimeError, match='modified in place'):
        out.sum().backward()


def test_grid_centres_lie_in_the_unit_square_at_valid_part_centres():
    grid = PatchGrid(10, 7, patch=4)
    centres = grid.centres()
    assert centres.shape == (6, 2)
    assert centres.min() > 0 and centres.max() < 1
    torch.testing.assert_close(centres[5], torch.tensor([9 / 10, 5.5 / 7]))


@pytest.mark.parametrize('patch, size', [(8, (20, 17)), (4, (13, 21)), (2, (10, 10)),
                                         (1, (5, 7))])
@pytest.mark.parametrize('winograd_min_tiles', [1, None])
def test_sparse_gradients_equal_dense_gradients_in_eval(patch, size, winograd_min_tiles,
                                                        randomise_norm_stats, monkeypatch):
    # Covers every expert path: oneDNN's convolution of tiles (patch 8; 4 and 2 below
    # Winograd's minimum of tiles), Winograd's (patches 4 and 2, forced from one tile) and
    # the matrix product for 1x1 outputs (patch 1).
    if winograd_min_tiles is not None:
        monkeypatch.setattr(Expert, 'winograd_min_tiles', winograd_min_tiles)
    experts = randomise_norm_stats(ConvExperts(8, 6, 5, 3)).eval()
    grid = PatchGrid(*size, patch=patch)
    indices, weights = distinct_routing(2, grid.num_patches, 8, 2)
    weights.requires_grad_()
    x = torch.randn(2, 6, *size, requires_grad=True)
    upstream = torch.randn(2, 5, *size)
    grads = {}
    for name, dispatch in (('sparse', sparse_dispatch), ('dense', dense_dispatch)):
        experts.zero_grad()
        x.grad = weights.grad = None
        (dispatch(x, grid, experts, indices, weights, 1) * upstream).sum().backward()
        grads[name] = [x.grad, weights.grad] + [p.grad for p in experts.parameters()
                                                 if p.grad is not None]
    assert len(grads['sparse']) == len(grads['dense']) > 2
    for got, want in zip(grads['sparse'], grads['dense']):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def sparse_and_dense_training_step(block, x):
    results = {}
    for dispatch in ('sparse', 'dense'):
        block.dispatch = dispatch
        block.zero_grad()
        out = block(x)
        out.square().sum().backward()
        results[dispatch] = [out.detach()] + [p.grad.clone() for p in block.parameters()
                                              if p.grad is not None]
    return results['sparse'], results['dense']


@pytest.mark.parametrize('norm', ['BN', 'LN2d'])
def test_only_a_per_pixel_expert_norm_makes_sparse_equal_dense_in_training(norm):
    # In training, BatchNorm normalises each expert over the patches routed to it (sparse)
    # or over the whole map (dense); LN2d normalises each pixel alone, so both agree.
    torch.manual_seed(0)
    # bias_rate=0: the balancing bias would move between the two steps and change the choice
    block = PCEBlock(16, 12, num_experts=8, top_k=2, patch_size=2,
                     expert_norm_cfg=dict(type=norm),
                     router_cfg=dict(bias_rate=0)).double().train()
    sparse, dense = sparse_and_dense_training_step(
        block, torch.randn(2, 16, 10, 9, dtype=torch.float64))
    assert len(sparse) == len(dense) > 10
    if norm == 'BN':
        assert not torch.allclose(sparse[0], dense[0], atol=1e-3)
        return
    assert type(block.experts.experts[0].norm).__name__ == 'LayerNorm2d'
    for got, want in zip(sparse, dense):   # the router's softmax runs in float32
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)

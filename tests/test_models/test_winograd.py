"""Winograd convolution of the experts' 4x4 and 6x6 tiles: the same convolution as
``F.conv2d`` (exactly in float64, within a few times its rounding in float32), what it
keeps for backward, and when an expert takes it."""
import pytest
import torch
import torch.nn.functional as F

from pce_mm.analysis import SavedForBackward
from pce_mm.models.experts import Expert
from pce_mm.models.winograd import winograd_conv


@pytest.mark.parametrize('side', [4, 6])
@pytest.mark.parametrize('bias', [False, True])
@pytest.mark.parametrize('layout', ['channels_last', 'nchw'])
def test_values_and_gradients_equal_conv2d_in_float64(side, bias, layout):
    torch.manual_seed(0)
    x = torch.randn(5, 7, side, side, dtype=torch.float64)
    if layout == 'channels_last':            # the dispatch's tiles
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    weight = torch.randn(3, 7, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True) if bias else None
    grad = torch.randn(5, 3, side - 2, side - 2, dtype=torch.float64)
    results = []
    for fn in (lambda: winograd_conv(x.permute(0, 2, 3, 1), weight, b).permute(0, 3, 1, 2),
               lambda: F.conv2d(x, weight, b)):
        x.grad = weight.grad = None
        if b is not None:
            b.grad = None
        out = fn()
        out.backward(grad)
        results.append((out, x.grad, weight.grad) + ((b.grad, ) if bias else ()))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-10)


@pytest.mark.parametrize('side', [4, 6])
def test_float32_error_is_a_few_times_the_direct_convolutions(side):
    # Winograd's transforms scale values up before the products round them: F(4x4, 3x3)
    # at its points measured 3.2x the direct convolution's error, at Lavin and Gray's 6.7x
    # (docs/performance.md).
    torch.manual_seed(0)
    x = torch.randn(256, side, side, 64, dtype=torch.float64)
    weight = torch.randn(32, 64, 3, 3, dtype=torch.float64) / 24
    exact = F.conv2d(x.permute(0, 3, 1, 2), weight).permute(0, 2, 3, 1)
    direct = F.conv2d(x.float().permute(0, 3, 1, 2), weight.float()).permute(0, 2, 3, 1)
    ours = winograd_conv(x.float(), weight.float())
    error = lambda y: (y.double() - exact).abs().max().item()
    assert error(ours) <= 5 * error(direct)


def test_keeps_the_tiles_given_and_the_weight_for_backward_not_their_transforms():
    tiles = torch.randn(64, 6, 6, 16, requires_grad=True)
    weight = torch.randn(24, 16, 3, 3, requires_grad=True)
    with SavedForBackward() as saved:
        out = winograd_conv(tiles, weight)
    assert set(saved.storages) == {tiles.data_ptr(), weight.data_ptr()}
    out.sum().backward()
    assert tiles.grad.abs().sum() > 0 and weight.grad.abs().sum() > 0


@pytest.mark.parametrize('side', [4, 6])
def test_expert_takes_it_from_its_minimum_of_tiles_and_the_result_is_the_same(side):
    torch.manual_seed(0)
    module = Expert(8, 12, 3).train()
    calls = []
    module.conv.register_forward_hook(lambda *args: calls.append('conv'))
    x = torch.randn(Expert.winograd_min_tiles, 8, side, side, requires_grad=True)
    winograd = module(x)
    assert not calls                             # Winograd's, not the conv module's
    module.winograd = False
    direct = module(x)
    assert calls == ['conv']
    torch.testing.assert_close(winograd, direct, rtol=1e-4, atol=1e-4)
    module.winograd = True
    module(x[:-1])                               # one tile fewer: oneDNN's
    with torch.autocast('cpu', dtype=torch.bfloat16):
        module(x)                                # under autocast: oneDNN's
    assert calls == ['conv'] * 3


def test_bad_tiles_are_refused_with_their_shapes():
    with pytest.raises(ValueError, match=r'tiles \(2, 5, 5, 3\)'):
        winograd_conv(torch.zeros(2, 5, 5, 3), torch.zeros(4, 3, 3, 3))

"""One expert, with every norm type the configs use: the matrix-product and Winograd paths equal the
convolution, and a one-pixel training batch is normalised instead of refused."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule

from pce_mm.analysis import SavedForBackward
from pce_mm.models.experts import Expert

NORMS = {'BN': dict(type='BN'), 'SyncBN': dict(type='SyncBN'),
         'GN': dict(type='GN', num_groups=4), 'LN2d': dict(type='LN2d')}


def expert(norm: str) -> Expert:
    torch.manual_seed(0)
    module = Expert(8, 12, 3, norm_cfg=NORMS[norm]).double()
    for name, param in module.norm.named_parameters():     # not the identity affine
        param.data.uniform_(0.5, 1.5) if name == 'weight' else param.data.normal_()
    return module


@pytest.mark.parametrize('norm', list(NORMS))
@pytest.mark.parametrize('side', [3, 4, 5, 6])   # outputs 1x1, 2x2 (product), 3x3, 4x4 (Winograd)
@pytest.mark.parametrize('channels_last', [False, True])     # the dispatch's tiles: True
def test_expert_is_conv_norm_act_in_both_modes(norm, side, channels_last):
    module = expert(norm)
    assert module.matmul
    module.max_matmul_output = 2                  # the matrix product at 2x2 outputs too
    module.winograd_min_tiles = 1                 # Winograd's at 4x4 outputs, from one tile
    x = torch.randn(6, 8, side, side, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    for mode in (True, False):
        module.train(mode)
        grads = []
        for fn in (module, lambda t: F.relu(module.norm(F.conv2d(t, module.conv.weight)))):
            x.grad = module.conv.weight.grad = None
            out = fn(x)
            torch.manual_seed(1)
            out.backward(torch.randn(out.shape, dtype=out.dtype))
            grads.append((out, x.grad, module.conv.weight.grad))
        torch.testing.assert_close(grads[0], grads[1])      # values and gradients


@pytest.mark.parametrize('norm', list(NORMS))
def test_one_pixel_training_batch_is_normalised(norm):
    module = expert(norm).train()
    if hasattr(module.norm, 'running_mean'):
        module.norm.running_mean.normal_()
        module.norm.running_var.uniform_(0.5, 2.0)
    before = {k: v.clone() for k, v in module.norm.state_dict().items()}
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64)
    out = module(x)
    conv = F.conv2d(x, module.conv.weight)
    if norm in ('BN', 'SyncBN'):       # one value per channel: the running statistics
        want = F.relu(module.norm.eval()(conv))
        for key, value in before.items():
            if key != 'num_batches_tracked':
                assert torch.equal(module.norm.state_dict()[key], value)
    else:                              # GN and LN normalise one pixel as any other
        want = F.relu(module.norm(conv))
    torch.testing.assert_close(out, want)
    out.sum().backward()
    assert module.conv.weight.grad.abs().sum() > 0


def test_only_a_plain_conv_takes_the_matmul_path_and_keys_match_conv_module():
    assert not Expert(8, 12, 3, conv_cfg=dict(type='Conv2dAdaptivePadding')).matmul
    ours = Expert(8, 12, 3, norm_cfg=dict(type='BN')).state_dict()
    mm = ConvModule(8, 12, 3, norm_cfg=dict(type='BN')).state_dict()
    assert list(ours) == list(mm)        # checkpoints of the ConvModule experts load


def test_matrix_product_keeps_the_weight_itself_for_backward_not_a_copy():
    # F.linear on the flattened weight would keep the flattened copy: for stage 4's experts
    # that is the size of every expert's weight again, each step (docs/performance.md).
    module = Expert(16, 24, 3).train()
    weight = module.conv.weight
    with SavedForBackward() as saved:
        out = module(torch.randn(32, 16, 3, 3, requires_grad=True))
    copies = [ptr for ptr, size in saved.storages.items()
              if size == weight.nbytes and ptr != weight.data_ptr()]
    assert weight.data_ptr() in saved.storages and not copies
    out.sum().backward()
    assert weight.grad.shape == weight.shape and weight.grad.abs().sum() > 0

"""The benchmark's sections below the whole model: one PCE block (sparse against dense
dispatch at E = 8, k = 2, and its time as E grows), where the deformable attention sits in
a PCENet (r50's layout by default), and (on a GPU) mmcv's CUDA deformable-attention kernel
against its PyTorch path.

Each ``measure_*`` returns numbers only; :mod:`pce_mm.analysis.benchmark_report` makes the
tables.
"""
from typing import Callable, Dict, Tuple, Union

import torch

from .flops import flop_analyzer
from .timing import Timer

__all__ = ['BLOCK', 'block_step', 'measure_dispatch', 'measure_context',
           'measure_cuda_kernel']

# The expert stage of one block at ResNet-50 stage-2 widths: c=512 (reduce to 96), 28x28.
BLOCK = dict(channels=512, expert_channels=96, patch_size=4, size=28, batch=8)
# The dispatch section's blocks: dense and sparse at E = 8, then sparse as E grows.
DISPATCH_CASES = [('dense', 8)] + [('sparse', e) for e in (2, 4, 8, 16, 32)]


def block_step(num_experts: int, dispatch: str, device: str, batch: int,
               whole: bool) -> Tuple[Callable, torch.nn.Module]:
    """``(step, block)``: forward + backward of one :data:`BLOCK`-shaped PCE block with
    ``dispatch``: of its expert stage only (routing and dispatch: what E, k and the
    dispatch mode change) or of the ``whole`` block (plus the 1x1 reduce and combine)."""
    from pce_mm.models import PCEBlock
    from pce_mm.models.dispatch import DISPATCHERS, PatchGrid
    torch.manual_seed(0)
    block = PCEBlock(BLOCK['channels'], BLOCK['expert_channels'], num_experts=num_experts,
                     top_k=2, patch_size=BLOCK['patch_size'], dispatch=dispatch)
    block = block.to(device).train()
    side = BLOCK['size']
    x = torch.randn(batch, BLOCK['channels'], side, side, device=device)
    h = torch.randn(batch, BLOCK['expert_channels'], side, side, device=device,
                    requires_grad=True)
    grid = PatchGrid(side, side, BLOCK['patch_size'])
    # The router as the switch sets it (k-means of the patches it routes, balanced): a
    # fresh one sends every patch to the same two experts after a few steps (train_step).
    if whole:
        block.init_router(x, max_points=x.shape[0] * grid.num_patches)
    else:
        block.router.init_from_data(grid.pool(h.detach()), grid.centres(h.device))

    def stage():
        routing = block.route(h, grid)
        y = DISPATCHERS[block.dispatch](h, grid, block.experts, routing.indices,
                                        routing.weights, block.experts.halo)
        y.sum().backward()

    def full():
        block(x).sum().backward()

    return (full if whole else stage), block


def measure_dispatch(timer: Timer, batch: int = BLOCK['batch']) -> Dict:
    """Each case of :data:`DISPATCH_CASES`, expert stage and whole block, timed in turns."""
    timed = {}
    for whole in (False, True):
        steps = {f'{d}{e}': block_step(e, d, timer.device, batch, whole)[0]
                 for d, e in DISPATCH_CASES}
        timed[whole] = timer(steps)
    result = {name: dict(stage_s=timed[False][name], block_s=timed[True][name])
              for name in timed[False]}
    sparse, dense = result['sparse8'], result['dense8']
    scaling = {e: result[f'sparse{e}'] for d, e in DISPATCH_CASES if d == 'sparse'}
    return dict(block=dict(BLOCK, batch=batch, num_experts=8, top_k=2), sparse=sparse,
                dense=dense,
                sparse_vs_dense_speedup=dense['stage_s'] / sparse['stage_s'],
                sparse_vs_dense_block_speedup=dense['block_s'] / sparse['block_s'],
                scaling_in_E={str(e): v for e, v in scaling.items()},
                time_ratio_E32_vs_E4=scaling[32]['stage_s'] / scaling[4]['stage_s'],
                block_time_ratio_E32_vs_E4=scaling[32]['block_s'] / scaling[4]['block_s'])


# (context, stages with it: None for the preset's 2-4)
CONTEXT_PLACEMENTS = [('none', None), ('stage', None), ('stage', (True, ) * 4),
                      ('block', None), ('block', (True, ) * 4)]


def measure_context(timer: Timer, side: Tuple[int, int] = (512, 768),
                    arch: Union[str, dict] = 'r50') -> Dict:
    """PCENet-``arch``'s forward (eval) with the context at each of
    :data:`CONTEXT_PLACEMENTS`, on one detection-sized image: time and GFLOPs. ``arch``: a
    preset's name or an architecture (see ``PCENet``)."""
    from pce_mm.models import PCENet
    x = torch.randn(1, 3, *side, device=timer.device)
    out = dict(input=[1, 3, *side], arch=arch, placements={})
    for context, stages in CONTEXT_PLACEMENTS:
        model = PCENet(arch, context=context, stage_with_context=stages).to(timer.device)
        model.eval()

        def forward():
            with torch.no_grad():
                model(x)

        seconds = timer(dict(forward=forward))['forward']
        out['placements'][f"{context}, stages {'1-4' if stages else '2-4'}"] = dict(
            context=context, stages='1-4' if stages else '2-4 (preset)', forward_s=seconds,
            gflops=flop_analyzer(model, x).total() / 1e9)
    return out


def measure_cuda_kernel(timer: Timer) -> Dict:
    """mmcv's CUDA kernel against its pure-PyTorch reference, called directly on the same
    inputs (a single-level map, 8 heads, 4 points: the context's shape), forward + backward."""
    from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttnFunction,
                                                  multi_scale_deformable_attn_pytorch)
    out = {}
    heads, points = 8, 4
    for c, side in ((256, 64), (512, 32)):
        n = side * side
        value = torch.randn(2, n, heads, c // heads, device='cuda', requires_grad=True)
        shapes = torch.tensor([[side, side]], device='cuda')
        start = torch.zeros(1, dtype=torch.long, device='cuda')
        locations = torch.rand(2, n, heads, 1, points, 2, device='cuda', requires_grad=True)
        weights = torch.rand(2, n, heads, 1, points, device='cuda').softmax(-1)
        weights.requires_grad_()

        def kernel():
            MultiScaleDeformableAttnFunction.apply(value, shapes, start, locations, weights,
                                                   64).sum().backward()

        def reference():
            multi_scale_deformable_attn_pytorch(value, shapes, locations,
                                                weights).sum().backward()

        seconds = timer(dict(kernel=kernel, reference=reference))
        out[f'{c}x{side}x{side}'] = dict(cuda_kernel_s=seconds['kernel'],
                                         pytorch_path_s=seconds['reference'])
    return dict(gpu=torch.cuda.get_device_name(), inputs=out)

"""PCE's cost, side by side with ResNet, in one run.

    python tools/analysis/benchmark.py [--device cpu|cuda] [--json OUT] [--quick]
    python tools/analysis/benchmark.py --report OUT.json      # the tables of a saved run

Sections (a table each on stdout, everything in OUT):
1. PCENet vs ResNet at matched active FLOPs, per preset: train-step throughput
   (forward + backward + SGD step, images/s) in phase 2 and phase 1, the memory the step
   needs (also with ``with_cp``), and the host reads of tensor values a step makes (each a
   synchronisation on a GPU; :class:`pce_mm.analysis.HostReads`).
2. Sparse vs dense dispatch of one PCE block at E=8, k=2 (forward + backward).
3. Time of that block as E grows at k=2.
4. FLOPs and parameters, active and total, counted by mmengine's FlopAnalyzer.
5. Where the deformable attention sits, at a detection-sized input.
6. Where a PCE training step's time goes, per preset, from the PyTorch profiler: the
   forward by block part (reduce, router, experts, gather / weighting / scatter, combine,
   context) and the backward's largest operators.
7. (cuda) mmcv's CUDA deformable-attention kernel vs its PyTorch path.
Every time is the median of ``--repeats`` runs after ``--warmup`` runs. The ``measure_*``
functions only measure and return numbers; ``report`` turns a result (this run's or a saved
JSON's) into the markdown tables.
"""
import argparse
import contextlib
import json
import logging
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

# (PCENet preset, its ResNet twin, input side, batch); --quick shrinks sides and batches.
PAIRS = [('tiny', dict(type='ResNet_CIFAR', depth=18), 32, 32),
         ('r18', dict(type='ResNet', depth=18), 224, 8),
         ('r50', dict(type='ResNet', depth=50), 224, 4)]
# The expert stage of one block at ResNet-50 stage-2 widths: c=512 (reduce to 96), 28x28.
BLOCK = dict(channels=512, expert_channels=96, patch_size=4, size=28, batch=8)


def sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def build_backbone(spec: dict) -> nn.Module:
    import pce_mm  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    # mmpretrain's scope whatever the caller's is: inside mmseg's, ResNet_CIFAR is unknown.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(spec)


def training_memory_mib(model: nn.Module, x: torch.Tensor) -> float:
    """Memory a training step needs, counted tensor by tensor (the CPU allocator has no
    peak statistic, and the process's resident set mostly shows what glibc kept): the
    storages autograd saves for backward during the forward pass, plus parameters, their
    gradients and SGD momentum (3x the parameters)."""
    from pce_mm.analysis import SavedForBackward
    params = frozenset(p.untyped_storage().data_ptr() for p in model.parameters())
    with SavedForBackward(exclude=params) as saved:
        loss = sum(o.float().mean() for o in model(x))
    loss.backward()
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return saved.mib + 3 * param_bytes / 2**20


def train_step(spec: dict, side: int, batch: int, device: str,
               phase: Optional[int] = None, switch: bool = True) -> tuple:
    """``(step, model, x)``: one training step of a backbone (forward, backward, SGD); a
    PCENet in ``phase`` (1 or 2) when given.

    Phase 2 is reached as training reaches it (``switch``): a step in phase 1, then the
    switch (experts tied, routers set by k-means of the batch's patches, balanced) and two
    routed steps. A fresh router forced into phase 2 has near-zero logits, and on a batch
    repeated step after step loss-free balancing's bias then outweighs them: every patch
    of a block goes to the same two experts, a routing no trained model has, and cheaper
    to run than a balanced one (docs/performance.md, "The benchmark's routing").
    ``switch=False`` skips it (``--quick``: its k-means needs a patch per expert in every
    block).
    """
    torch.manual_seed(0)
    model = build_backbone(spec).to(device)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, side, side, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        sum(o.float().mean() for o in model(x)).backward()
        opt.step()

    switch = switch and phase == 2
    if switch:
        model.set_phase(1)
        step()
    if phase is not None:
        model.set_phase(phase)
    with _quiet_log():                              # the switch's report
        step()                                      # creates grads and optimizer state
    if switch:
        step()                                      # loss-free balancing settles
    return step, model, x


@contextlib.contextmanager
def _quiet_log():
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def host_reads(step: Callable) -> int:
    """Host reads of tensor values in one step: each is a synchronisation on a GPU."""
    from pce_mm.analysis import HostReads
    with HostReads() as reads:
        step()
    return reads.total


def step_memory(step: Callable, model: nn.Module, x: torch.Tensor, device: str) -> float:
    """MiB a training step needs: the allocator's peak on a GPU, counted tensors on a CPU
    (:func:`training_memory_mib`)."""
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    model.zero_grad(set_to_none=True)
    return training_memory_mib(model, x)


def flop_analyzer(model: nn.Module, x: torch.Tensor):
    """mmengine's ``FlopAnalyzer`` of ``model(x)``, quiet about ops it does not count."""
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(model, (x, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer


def flops_and_params(model: nn.Module, side: int, device: str) -> Dict[str, float]:
    model = model.to(device)
    model.eval()                 # mmpretrain's ResNet.train() returns None: no chaining
    analyzer = flop_analyzer(model, torch.randn(1, 3, side, side, device=device))
    by_module = analyzer.by_module()
    return dict(gflops=analyzer.total() / 1e9,
                context_gflops=sum(v for k, v in by_module.items()
                                   if k.endswith('.context')) / 1e9,
                params_m=sum(p.numel() for p in model.parameters()) / 1e6)


def pairs(args) -> List[tuple]:
    """:data:`PAIRS` with their sides and batches shrunk under ``--quick``."""
    return [(arch, resnet, *((min(side, 32), 2) if args.quick else (side, batch)))
            for arch, resnet, side, batch in PAIRS]


def script_pairs(argv: Optional[List[str]] = None) -> Tuple[argparse.Namespace, List[tuple]]:
    """``--repeats`` and ``--arch`` of the timing scripts in docs/scripts, and the
    :data:`PAIRS` those presets pick."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--arch', nargs='+', default=[p[0] for p in PAIRS])
    args = parser.parse_args(argv)
    return args, [pair for pair in PAIRS if pair[0] in args.arch]


def pce_spec(arch: str) -> dict:
    return dict(type='PCENet', arch=arch, num_experts=8, top_k=2)


def measure_pce_vs_resnet(args) -> Dict:
    from pce_mm.models import PCENet
    out = {}
    for arch, resnet, side, batch in pairs(args):
        pce = PCENet(arch=arch, num_experts=8, top_k=2)
        active = flops_and_params(pce, side, args.device)
        total = flops_and_params(PCENet(arch=arch, num_experts=8, top_k=2, dispatch='dense'),
                                 side, args.device)
        ref = flops_and_params(build_backbone(resnet), side, args.device)
        params = pce.count_params()
        pce_step = train_step(pce_spec(arch), side, batch, args.device, phase=2,
                              switch=not args.quick)
        warm_step = train_step(pce_spec(arch), side, batch, args.device, phase=1)
        ref_step = train_step(resnet, side, batch, args.device)
        seconds = interleaved_medians(
            dict(pce=pce_step[0], phase1=warm_step[0], resnet=ref_step[0]), args.device,
            args.warmup, args.repeats)
        pce_run = dict(step_s=seconds['pce'], images_per_s=batch / seconds['pce'],
                       phase1_step_s=seconds['phase1'],
                       phase1_images_per_s=batch / seconds['phase1'],
                       host_reads=host_reads(pce_step[0]),
                       phase1_host_reads=host_reads(warm_step[0]),
                       memory_mib=step_memory(*pce_step, args.device),
                       memory_mib_with_cp=step_memory(
                           *train_step(dict(pce_spec(arch), with_cp=True), side, batch,
                                       args.device, phase=2, switch=not args.quick),
                           args.device))
        ref_run = dict(step_s=seconds['resnet'], images_per_s=batch / seconds['resnet'],
                       memory_mib=step_memory(*ref_step, args.device))
        out[arch] = dict(
            input=[batch, 3, side, side], resnet=resnet['type'] + str(resnet['depth']),
            pce_active_gflops=active['gflops'], pce_total_gflops=total['gflops'],
            pce_context_gflops=active['context_gflops'], resnet_gflops=ref['gflops'],
            flops_ratio=active['gflops'] / ref['gflops'],
            pce_params_m=params['total'] / 1e6, pce_active_params_m=params['active'] / 1e6,
            resnet_params_m=ref['params_m'], pce=pce_run, resnet_step=ref_run,
            throughput_ratio=pce_run['images_per_s'] / ref_run['images_per_s'],
            phase1_throughput_ratio=pce_run['phase1_images_per_s'] / ref_run['images_per_s'],
            peak_memory_ratio=pce_run['memory_mib'] / ref_run['memory_mib'],
            peak_memory_ratio_with_cp=pce_run['memory_mib_with_cp'] / ref_run['memory_mib'])
    return out


def report_pce_vs_resnet(out: Dict, device: str) -> List[str]:
    memory = 'peak MiB' if device == 'cuda' else 'memory MiB (saved + 3x params)'
    lines = ['## PCENet vs ResNet, train step (PCE / ResNet (ratio))', '',
             f'| pair | side | batch | active GFLOPs | images/s | {memory} | PCE with_cp | '
             'PCE phase 1 images/s (/ ResNet) | host reads a step, phase 1 / 2 |',
             '|---|---|---|---|---|---|---|---|---|']
    for arch, o in out.items():
        batch, side = o['input'][0], o['input'][-1]
        pce, ref = o['pce'], o['resnet_step']
        cp = (f"{pce['memory_mib_with_cp']:.0f} ({o['peak_memory_ratio_with_cp']:.2f})"
              if 'memory_mib_with_cp' in pce else 'not measured')
        warm = (f"{pce['phase1_images_per_s']:.1f} ({o['phase1_throughput_ratio']:.2f})"
                if 'phase1_images_per_s' in pce else 'not measured')
        reads = (f"{pce['phase1_host_reads']} / {pce['host_reads']}"
                 if 'host_reads' in pce else 'not measured')
        lines.append(f"| {arch} vs {o['resnet']} | {side} | {batch} | "
                     f"{o['pce_active_gflops']:.2f} / {o['resnet_gflops']:.2f} "
                     f"({o['flops_ratio']:.3f}) | "
                     f"{pce['images_per_s']:.1f} / {ref['images_per_s']:.1f} "
                     f"({o['throughput_ratio']:.2f}) | "
                     f"{pce['memory_mib']:.0f} / {ref['memory_mib']:.0f} "
                     f"({o['peak_memory_ratio']:.2f}) | {cp} | {warm} | {reads} |")
    return lines


def make_block(num_experts: int, dispatch: str, device: str):
    from pce_mm.models import PCEBlock
    return PCEBlock(BLOCK['channels'], BLOCK['expert_channels'], num_experts=num_experts,
                    top_k=2, patch_size=BLOCK['patch_size'], dispatch=dispatch).to(device)


def block_step(num_experts: int, dispatch: str, args, batch: int, whole: bool) -> Callable:
    """Forward + backward of one block: of its expert stage only (routing and dispatch:
    what E, k and the dispatch mode change) or of the whole block (plus the 1x1 reduce and
    combine)."""
    from pce_mm.models.dispatch import DISPATCHERS, PatchGrid
    torch.manual_seed(0)
    block = make_block(num_experts, dispatch, args.device).train()
    side = BLOCK['size']
    x = torch.randn(batch, BLOCK['channels'], side, side, device=args.device)
    h = torch.randn(batch, BLOCK['expert_channels'], side, side, device=args.device,
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
        y = DISPATCHERS[dispatch](h, grid, block.experts, routing.indices, routing.weights,
                                  block.experts.halo)
        y.sum().backward()

    def full():
        block(x).sum().backward()

    return full if whole else stage


def interleaved_medians(steps: Dict[str, Callable], device: str, warmup: int,
                        repeats: int) -> Dict[str, float]:
    """Median time of each step, timed in turns (one run of each per round), so that a
    machine getting faster or slower during the run shifts all of them alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def median_time(fn: Callable, device: str, warmup: int, repeats: int) -> float:
    return interleaved_medians(dict(fn=fn), device, warmup, repeats)['fn']


def measure_dispatch(args) -> Dict:
    batch = 2 if args.quick else BLOCK['batch']
    cases = [('dense', 8)] + [('sparse', e) for e in (2, 4, 8, 16, 32)]
    timed = {}
    for whole in (False, True):
        steps = {f'{d}{e}': block_step(e, d, args, batch, whole) for d, e in cases}
        timed[whole] = interleaved_medians(steps, args.device, args.warmup, args.repeats)
    result = {f'{d}{e}': dict(stage_s=timed[False][f'{d}{e}'], block_s=timed[True][f'{d}{e}'])
              for d, e in cases}
    sparse, dense = result['sparse8'], result['dense8']
    scaling = {e: result[f'sparse{e}'] for e in (2, 4, 8, 16, 32)}
    return dict(block=dict(BLOCK, batch=batch, num_experts=8, top_k=2), sparse=sparse,
                dense=dense,
                sparse_vs_dense_speedup=dense['stage_s'] / sparse['stage_s'],
                sparse_vs_dense_block_speedup=dense['block_s'] / sparse['block_s'],
                scaling_in_E={str(e): v for e, v in scaling.items()},
                time_ratio_E32_vs_E4=scaling[32]['stage_s'] / scaling[4]['stage_s'],
                block_time_ratio_E32_vs_E4=scaling[32]['block_s'] / scaling[4]['block_s'])


def report_dispatch(out: Dict) -> List[str]:
    block = out['block']
    shape = f"({block['batch']}, {block['channels']}, {block['size']}, {block['size']})"
    lines = [f'## One PCE block, input {shape}, experts at {block["expert_channels"]} '
             f'channels, patch {block["patch_size"]}, k=2, forward + backward (ms)', '',
             '| dispatch, E | expert stage (routing + dispatch) | whole block |',
             '|---|---|---|']
    for name, t in (('dense, 8', out['dense']), ('sparse, 8', out['sparse'])):
        lines.append(f"| {name} | {t['stage_s'] * 1e3:.1f} | {t['block_s'] * 1e3:.1f} |")
    lines.append(f"| **dense / sparse** | **{out['sparse_vs_dense_speedup']:.2f}x** | "
                 f"{out['sparse_vs_dense_block_speedup']:.2f}x |")
    for e, t in out['scaling_in_E'].items():
        lines.append(f"| sparse, {e} | {t['stage_s'] * 1e3:.1f} | {t['block_s'] * 1e3:.1f} |")
    lines.append(f"| **E=32 / E=4** | **{out['time_ratio_E32_vs_E4']:.2f}** | "
                 f"{out['block_time_ratio_E32_vs_E4']:.2f} |")
    return lines


def measure_context(args) -> Dict:
    from pce_mm.models import PCENet
    side = (64, 96) if args.quick else (512, 768)
    x = torch.randn(1, 3, *side, device=args.device)
    out = dict(input=[1, 3, *side], placements={})
    for context, stages in (('none', None), ('stage', None), ('stage', (True, ) * 4),
                            ('block', None), ('block', (True, ) * 4)):
        model = PCENet('r50', context=context, stage_with_context=stages).to(args.device)
        model.eval()
        with torch.no_grad():
            seconds = median_time(lambda: model(x), args.device, args.warmup, args.repeats)
        analyzer = flop_analyzer(model, x)
        out['placements'][f"{context}, stages {'1-4' if stages else '2-4'}"] = dict(
            context=context, stages='1-4' if stages else '2-4 (preset)', forward_s=seconds,
            gflops=analyzer.total() / 1e9)
    return out


def report_context(out: Dict) -> List[str]:
    lines = [f"## Where the context sits: PCENet-r50 forward (eval), input "
             f"{tuple(out['input'])}", '', '| context | stages | ms | GFLOPs |',
             '|---|---|---|---|']
    for v in out['placements'].values():
        lines.append(f"| `{v['context']}` | {v['stages']} | {v['forward_s'] * 1e3:.0f} | "
                     f"{v['gflops']:.1f} |")
    return lines


BLOCK_PARTS = ('reduce', 'router', 'experts', 'combine', 'context')


def label_block_parts(model: nn.Module) -> List:
    """Opens a profiler range ``pce.<part>`` around every call of each PCE block's parts
    (and ``pce.block`` around the block), by forward hooks: the model's code is untouched.
    Returns the hook handles."""
    from torch.autograd.profiler import record_function
    from pce_mm.models import PCEBlock
    handles = []

    def label(module: nn.Module, name: str) -> None:
        open_ranges = []

        def enter(*_):
            open_ranges.append(record_function(name))
            open_ranges[-1].__enter__()

        def leave(*_):
            open_ranges.pop().__exit__(None, None, None)

        handles.extend([module.register_forward_pre_hook(enter),
                        module.register_forward_hook(leave)])

    for block in model.modules():
        if isinstance(block, PCEBlock):
            label(block, 'pce.block')
            for part in ('reduce', 'router', 'combine', 'context'):
                if getattr(block, part) is not None:
                    label(getattr(block, part), f'pce.{part}')
            for expert in block.experts.experts:
                label(expert, 'pce.experts')
    return handles


def measure_profile(args) -> Dict:
    """One routed PCE training step per preset under the PyTorch profiler (after a step
    that is not profiled): forward time by block part, backward's top operators. Times are
    each range's CPU time: on a GPU, what launching costs, not what the kernels take."""
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile
    out = {}
    for arch, _, side, batch in pairs(args):
        _, model, x = train_step(pce_spec(arch), side, batch, args.device, phase=2,
                                 switch=not args.quick)
        handles = label_block_parts(model)
        activities = [ProfilerActivity.CPU] + (
            [ProfilerActivity.CUDA] if args.device == 'cuda' else [])
        with profile(activities=activities) as prof:
            with record_function('pce.forward'):
                loss = sum(o.float().mean() for o in model(x))
            with record_function('pce.backward'):
                loss.backward()
            sync(args.device)
        for handle in handles:
            handle.remove()
        ms = {e.key: e.cpu_time_total / 1e3 for e in prof.key_averages()}
        parts = {part: ms.get(f'pce.{part}', 0.0) for part in BLOCK_PARTS}
        # what the blocks do besides their parts: patch pooling, gather, weighting, scatter
        parts['dispatch_and_rest'] = ms['pce.block'] - sum(parts.values())
        parts['outside_blocks'] = ms['pce.forward'] - ms['pce.block']
        prefix = 'autograd::engine::evaluate_function: '
        backward_ops = sorted(((k[len(prefix):], v) for k, v in ms.items()
                               if k.startswith(prefix)), key=lambda kv: -kv[1])
        out[arch] = dict(input=[batch, 3, side, side], forward_ms=ms['pce.forward'],
                         backward_ms=ms['pce.backward'], forward_parts_ms=parts,
                         backward_top_ms=dict(backward_ops[:5]))
    return out


def report_profile(out: Dict) -> List[str]:
    parts = BLOCK_PARTS + ('dispatch_and_rest', 'outside_blocks')
    lines = ['## Where a routed PCE train step goes (PyTorch profiler, ms; profiled times '
             'run above the timed ones)', '',
             '| preset | input | forward | ' + ' | '.join(parts) + ' | backward | '
             'largest backward operators |', '|---' * (len(parts) + 5) + '|']
    for arch, o in out.items():
        top = ', '.join(f'{k} {v:.0f}' for k, v in o['backward_top_ms'].items())
        lines.append(f"| {arch} | {tuple(o['input'])} | {o['forward_ms']:.0f} | "
                     + ' | '.join(f"{o['forward_parts_ms'][p]:.0f}" for p in parts)
                     + f" | {o['backward_ms']:.0f} | {top} |")
    return lines


def measure_cuda_kernel(args) -> Dict:
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

        seconds = interleaved_medians(dict(kernel=kernel, reference=reference), 'cuda',
                                      args.warmup, args.repeats)
        out[f'{c}x{side}x{side}'] = dict(cuda_kernel_s=seconds['kernel'],
                                         pytorch_path_s=seconds['reference'])
    return dict(gpu=torch.cuda.get_device_name(), inputs=out)


def report_cuda_kernel(out: Dict) -> List[str]:
    lines = [f"## mmcv deformable attention on {out['gpu']}, forward + backward (ms)", '',
             '| input | CUDA kernel | PyTorch path |', '|---|---|---|']
    for k, v in out['inputs'].items():
        lines.append(f"| (2, {k}) | {v['cuda_kernel_s'] * 1e3:.2f} | "
                     f"{v['pytorch_path_s'] * 1e3:.2f} |")
    return lines


def report(result: Dict) -> str:
    """The markdown tables of a result, measured now or loaded from ``--json``."""
    lines = [f"# benchmark on {result['device']}, {result['threads']} threads, median of "
             f"{result['repeats']} after {result['warmup']} warm-up"]
    sections = (('pce_vs_resnet', lambda r: report_pce_vs_resnet(r, result['device_type'])),
                ('dispatch', report_dispatch), ('context', report_context),
                ('profile', report_profile), ('cuda_kernel', report_cuda_kernel))
    for key, fn in sections:
        if key in result:
            lines += [''] + fn(result[key])
    return '\n'.join(lines)


def measure(args) -> Dict:
    import pce_mm  # noqa: F401
    result = dict(device=torch.cuda.get_device_name() if args.device == 'cuda'
                  else platform.processor() or platform.machine(), device_type=args.device,
                  threads=torch.get_num_threads(), torch=torch.__version__,
                  warmup=args.warmup, repeats=args.repeats, quick=args.quick)
    if 'pce_vs_resnet' in args.sections:
        result['pce_vs_resnet'] = measure_pce_vs_resnet(args)
        result['pce_vs_resnet_throughput'] = {
            k: v['throughput_ratio'] for k, v in result['pce_vs_resnet'].items()}
        result['pce_vs_resnet_peak_memory'] = {
            k: v['peak_memory_ratio'] for k, v in result['pce_vs_resnet'].items()}
    if 'dispatch' in args.sections:
        result['dispatch'] = measure_dispatch(args)
        result['sparse_vs_dense_speedup'] = result['dispatch']['sparse_vs_dense_speedup']
        result['time_ratio_E32_vs_E4'] = result['dispatch']['time_ratio_E32_vs_E4']
    if 'context' in args.sections:
        result['context'] = measure_context(args)
    if 'profile' in args.sections:
        result['profile'] = measure_profile(args)
    if args.device == 'cuda':
        result['cuda_kernel'] = measure_cuda_kernel(args)
    return result


def main(argv: List[str] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--json', help='write every figure to this file')
    parser.add_argument('--report', metavar='JSON',
                        help='print the tables of a saved run and measure nothing')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--sections', nargs='+',
                        default=['pce_vs_resnet', 'dispatch', 'context', 'profile'],
                        choices=['pce_vs_resnet', 'dispatch', 'context', 'profile'])
    parser.add_argument('--quick', action='store_true',
                        help='small inputs and one repeat: checks the tool, not the numbers')
    args = parser.parse_args(argv)
    if args.report:
        with open(args.report) as f:
            result = json.load(f)
        print(report(result))
        return result
    if args.quick:
        args.warmup, args.repeats = 1, 1
    result = measure(args)
    print(report(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()

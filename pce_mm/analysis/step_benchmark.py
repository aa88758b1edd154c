"""The benchmark's whole-model sections: each PCENet preset against its ResNet twin at
matched active FLOPs (train-step time in phase 2 and phase 1, memory, host reads, FLOPs and
parameters), and where a routed PCE training step's time goes, by the PyTorch profiler.

Each ``measure_*`` returns numbers only; :mod:`pce_mm.analysis.benchmark_report` makes the
tables.
"""
from typing import Dict, List, Sequence

from torch import nn

from .timing import Timer, sync
from .train_step import (build_backbone, flops_and_params, host_reads, pce_spec, step_memory,
                         train_step)

__all__ = ['measure_pce_vs_resnet', 'BLOCK_PARTS', 'label_block_parts', 'profile_step',
           'measure_profile']


def measure_pce_vs_resnet(pairs: Sequence[tuple], timer: Timer, switch: bool = True) -> Dict:
    """Per ``(preset, twin, side, batch)`` of ``pairs``: FLOPs (active: the sparse path as
    it runs; total: ``dispatch='dense'``, every expert on every patch) and parameters; the
    routed step (reached through the switch unless ``switch=False``), the phase-1 step and
    the twin's, timed together by ``timer``; host reads and memory of each step."""
    device = timer.device
    out = {}
    for arch, resnet, side, batch in pairs:
        pce = build_backbone(pce_spec(arch))
        active = flops_and_params(pce, side, device)
        total = flops_and_params(
            build_backbone(pce_spec(arch, expert_cfg=dict(dispatch='dense'))), side, device)
        ref = flops_and_params(build_backbone(resnet), side, device)
        params = pce.count_params()
        pce_step = train_step(pce_spec(arch), side, batch, device, phase=2, switch=switch)
        warm_step = train_step(pce_spec(arch), side, batch, device, phase=1)
        ref_step = train_step(resnet, side, batch, device)
        seconds = timer(dict(pce=pce_step[0], phase1=warm_step[0], resnet=ref_step[0]))
        with_cp = train_step(pce_spec(arch, with_cp=True), side, batch, device, phase=2,
                             switch=switch)
        pce_run = dict(step_s=seconds['pce'], images_per_s=batch / seconds['pce'],
                       phase1_step_s=seconds['phase1'],
                       phase1_images_per_s=batch / seconds['phase1'],
                       host_reads=host_reads(pce_step[0]),
                       phase1_host_reads=host_reads(warm_step[0]),
                       memory_mib=step_memory(*pce_step, device),
                       memory_mib_with_cp=step_memory(*with_cp, device))
        ref_run = dict(step_s=seconds['resnet'], images_per_s=batch / seconds['resnet'],
                       memory_mib=step_memory(*ref_step, device))
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


def profile_step(model: nn.Module, x, device: str) -> Dict[str, float]:
    """CPU ms of every range and operator in one forward + backward of ``model(x)``."""
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == 'cuda' else [])
    handles = label_block_parts(model)
    try:
        with profile(activities=activities) as prof:
            with record_function('pce.forward'):
                loss = sum(o.float().mean() for o in model(x))
            with record_function('pce.backward'):
                loss.backward()
            sync(device)
    finally:
        for handle in handles:
            handle.remove()
    return {e.key: e.cpu_time_total / 1e3 for e in prof.key_averages()}


def measure_profile(pairs: Sequence[tuple], device: str, switch: bool = True) -> Dict:
    """One routed PCE training step per preset under the PyTorch profiler (after the steps
    of :func:`train_step`, which are not profiled): forward time by block part, the
    backward's top operators. Times are each range's CPU time: on a GPU, what launching
    costs, not what the kernels take."""
    out = {}
    for arch, _, side, batch in pairs:
        _, model, x = train_step(pce_spec(arch), side, batch, device, phase=2, switch=switch)
        ms = profile_step(model, x, device)
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

"""One run of the benchmark (``tools/analysis/benchmark.py``): the sections asked for, the
machine they ran on and the headline ratios, as one JSON-ready dict.

:mod:`pce_mm.analysis.benchmark_report` turns such a dict, this run's or a saved one, into
the markdown tables.
"""
import platform
from typing import Dict, Optional, Sequence

import torch

from .block_benchmark import BLOCK, measure_context, measure_cuda_kernel, measure_dispatch
from .step_benchmark import measure_pce_vs_resnet, measure_profile
from .timing import Timer
from .train_step import select_pairs

__all__ = ['SECTIONS', 'run_benchmark']

SECTIONS = ('pce_vs_resnet', 'dispatch', 'context', 'profile')


def run_benchmark(sections: Sequence[str] = SECTIONS, timer: Optional[Timer] = None,
                  quick: bool = False, archs: Optional[Sequence[str]] = None) -> Dict:
    """Measures ``sections`` with ``timer`` (default: medians of 5 after 2 on the CPU);
    ``archs`` picks the presets of the whole-model sections. ``quick``: inputs of at most
    32 pixels, batches of 2, no switch before the routed steps (its k-means needs a patch
    per expert in every block): checks the tool, not the numbers. On a GPU it also times
    mmcv's CUDA deformable-attention kernel."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f'unknown benchmark section(s) {sorted(unknown)}; '
                         f'the sections are {SECTIONS}')
    import pce_mm  # noqa: F401  (compat fixes and registration)
    timer = timer or Timer()
    device = timer.device
    pairs = select_pairs(archs, quick)
    result = dict(device=torch.cuda.get_device_name() if device == 'cuda'
                  else platform.processor() or platform.machine(), device_type=device,
                  threads=torch.get_num_threads(), torch=torch.__version__,
                  warmup=timer.warmup, repeats=timer.repeats, quick=quick)
    if 'pce_vs_resnet' in sections:
        rows = result['pce_vs_resnet'] = measure_pce_vs_resnet(pairs, timer, switch=not quick)
        result['pce_vs_resnet_throughput'] = {k: v['throughput_ratio'] for k, v in rows.items()}
        result['pce_vs_resnet_peak_memory'] = {k: v['peak_memory_ratio']
                                               for k, v in rows.items()}
    if 'dispatch' in sections:
        block = result['dispatch'] = measure_dispatch(timer, batch=2 if quick else BLOCK['batch'])
        result['sparse_vs_dense_speedup'] = block['sparse_vs_dense_speedup']
        result['time_ratio_E32_vs_E4'] = block['time_ratio_E32_vs_E4']
    if 'context' in sections:
        result['context'] = measure_context(timer, side=(64, 96) if quick else (512, 768))
    if 'profile' in sections:
        result['profile'] = measure_profile(pairs, device, switch=not quick)
    if device == 'cuda':
        result['cuda_kernel'] = measure_cuda_kernel(timer)
    return result

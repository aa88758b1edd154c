"""The markdown tables of a benchmark run (:func:`pce_mm.analysis.benchmark.run_benchmark`),
measured now or loaded from its JSON: a table per section, nothing measured here."""
from typing import Dict, List

from .step_benchmark import BLOCK_PARTS

__all__ = ['report', 'report_pce_vs_resnet', 'report_dispatch', 'report_context',
           'report_profile', 'report_cuda_kernel']


def report_pce_vs_resnet(out: Dict, device: str) -> List[str]:
    memory = 'peak MiB' if device == 'cuda' else 'memory MiB (saved + 3x params)'
    lines = ['## PCENet vs ResNet, train step (PCE / ResNet (ratio))', '',
             f'| pair | side | batch | active GFLOPs | images/s | {memory} | PCE with_cp | '
             'PCE phase 1 images/s (/ ResNet) | host reads a step, phase 1 / 2 |',
             '|---|---|---|---|---|---|---|---|---|']
    for arch, o in out.items():
        batch, side = o['input'][0], o['input'][-1]
        pce, ref = o['pce'], o['resnet_step']
        # Older saved runs lack the last three columns.
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


def report_context(out: Dict) -> List[str]:
    lines = [f"## Where the context sits: PCENet-{out.get('arch', 'r50')} forward (eval), "
             f"input {tuple(out['input'])}", '', '| context | stages | ms | GFLOPs |',
             '|---|---|---|---|']
    for v in out['placements'].values():
        lines.append(f"| `{v['context']}` | {v['stages']} | {v['forward_s'] * 1e3:.0f} | "
                     f"{v['gflops']:.1f} |")
    return lines


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


def report_cuda_kernel(out: Dict) -> List[str]:
    lines = [f"## mmcv deformable attention on {out['gpu']}, forward + backward (ms)", '',
             '| input | CUDA kernel | PyTorch path |', '|---|---|---|']
    for k, v in out['inputs'].items():
        lines.append(f"| (2, {k}) | {v['cuda_kernel_s'] * 1e3:.2f} | "
                     f"{v['pytorch_path_s'] * 1e3:.2f} |")
    return lines


def report(result: Dict) -> str:
    """The markdown tables of a benchmark result, one per section it holds."""
    lines = [f"# benchmark on {result['device']}, {result['threads']} threads, median of "
             f"{result['repeats']} after {result['warmup']} warm-up"]
    sections = (('pce_vs_resnet', lambda r: report_pce_vs_resnet(r, result['device_type'])),
                ('dispatch', report_dispatch), ('context', report_context),
                ('profile', report_profile), ('cuda_kernel', report_cuda_kernel))
    for key, fn in sections:
        if key in result:
            lines += [''] + fn(result[key])
    return '\n'.join(lines)

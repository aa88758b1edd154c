"""The benchmark and step-time tools run and report what they promise (their numbers are
not asserted: speed lives in docs/performance.md)."""
import json
import math
import os.path as osp
import subprocess
import sys

import pytest
from helpers import REPO, load_tool


def test_benchmark_writes_the_promised_fields(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    load_tool('tools/analysis/benchmark.py').main(['--quick', '--json', str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    for key in ('sparse_vs_dense_speedup', 'time_ratio_E32_vs_E4'):
        assert math.isfinite(result[key]) and result[key] > 0
    for key in ('pce_vs_resnet_throughput', 'pce_vs_resnet_peak_memory'):
        assert set(result[key]) == {'tiny', 'r18', 'r50'}
    for arch in ('tiny', 'r18', 'r50'):
        row = result['pce_vs_resnet'][arch]
        assert row['pce_active_gflops'] < row['pce_total_gflops']
        assert row['pce_active_params_m'] < row['pce_params_m']
    assert set(result['dispatch']['scaling_in_E']) == {'2', '4', '8', '16', '32'}
    assert result['threads'] >= 1 and '| **dense / sparse** |' in printed
    assert len(result['context']['placements']) == 5
    for arch in ('tiny', 'r18', 'r50'):
        profile = result['profile'][arch]
        parts = profile['forward_parts_ms']
        assert min(parts[p] for p in ('reduce', 'router', 'experts', 'combine')) > 0
        assert sum(parts.values()) == pytest.approx(profile['forward_ms'])
        assert profile['backward_ms'] > 0 and len(profile['backward_top_ms']) == 5
    for row in result['pce_vs_resnet'].values():
        assert row['pce']['phase1_host_reads'] == 1 and row['pce']['host_reads'] > 1
    # Reporting is separate from measuring: the saved file gives the same tables.
    assert load_tool('tools/analysis/benchmark.py').report(result).strip() == printed.strip()


def test_benchmark_reports_the_saved_readme_figures_without_measuring(capsys):
    bench = load_tool('tools/analysis/benchmark.py')
    bench.main(['--report', osp.join(REPO, 'docs/benchmark_cpu.json')])
    printed = capsys.readouterr().out
    # performance.md's first table: tiny 28.4 vs 55.7 images/s, memory 1212 / 271 MiB
    assert '| tiny vs ResNet_CIFAR18 | 32 | 32 | 0.55 / 0.56 (0.982) | 28.4 / 55.7 (0.51) | ' \
        '1212 / 271 (4.47) |' in printed
    assert '| **dense / sparse** | **2.61x** |' in printed
    # the README's results table (twelfth session, phase 2 after the switch)
    bench.main(['--report', osp.join(REPO, 'docs/benchmark_cpu_switched.json')])
    printed = capsys.readouterr().out
    assert '| tiny vs ResNet_CIFAR18 | 32 | 32 | 0.55 / 0.56 (0.982) | 22.0 / 49.0 (0.45) | ' \
        '845 / 271 (3.12) | 587 (2.16) | 48.4 (0.99) | 1 / 17 |' in printed
    assert '| **dense / sparse** | **2.26x** |' in printed and '| **E=32 / E=4** | **1.88** |' \
        in printed


def test_step_time_trains_a_config_on_generated_official_files():
    """And reaches PCE's phase 2 through the switch, untimed, as training does."""
    run = subprocess.run(
        [sys.executable, 'tools/analysis/step_time.py', 'configs/resnet_mnist.py',
         'configs/pce_mnist.py', '--steps', '1', '--warmup', '0'], cwd=REPO,
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'STEP configs/resnet_mnist.py:' in run.stdout and '| `resnet_mnist.py` | 128 |' \
        in run.stdout
    assert 'STEP configs/pce_mnist.py:' in run.stdout
    log = run.stdout + run.stderr
    assert 'PCENet: switched to routing at epoch 1, iteration 2' in log
    assert 'Iter(train) [3/3]' in log and 'router_s1_entropy' in log.split('[3/3]')[1]


def test_benchmark_times_the_routed_step_at_the_routing_training_has():
    """A fresh router forced into phase 2 sends, step after step on one batch, every patch
    of a block to the same two experts; the benchmark switches as training does."""
    import torch
    bench = load_tool('tools/analysis/benchmark.py')
    step, model, _ = bench.train_step(bench.pce_spec('tiny'), 32, 4, 'cpu', phase=2)
    assert model.switched
    loads = []
    for block in model.blocks():
        block.router.register_forward_hook(lambda mod, args, out: loads.append(
            torch.bincount(out.indices.flatten(), minlength=mod.num_experts)))
    for _ in range(2):
        step()
    assert len(loads) == 2 * len(model.blocks())
    for load in loads:
        assert int((load > 0).sum()) > 4 and load.max() <= 3 * load.float().mean()


def test_benchmark_block_routes_balanced():
    """The dispatch section's block, expert stage and whole, routes every expert a share
    near 1 / E on each timed step."""
    import argparse
    import torch
    from pce_mm.models import dispatch
    bench = load_tool('tools/analysis/benchmark.py')
    seen = []
    sparse = dispatch.DISPATCHERS['sparse']

    def spy(x, grid, experts, indices, *args):
        seen.append(torch.bincount(indices.flatten(), minlength=len(experts)))
        return sparse(x, grid, experts, indices, *args)

    dispatch.DISPATCHERS['sparse'] = spy
    try:
        for whole in (False, True):
            step = bench.block_step(8, 'sparse', argparse.Namespace(device='cpu'), 2, whole)
            for _ in range(3):
                step()
    finally:
        dispatch.DISPATCHERS['sparse'] = sparse
    assert len(seen) == 6
    for load in seen:
        assert int((load > 0).sum()) == 8 and load.max() <= 2 * load.float().mean()

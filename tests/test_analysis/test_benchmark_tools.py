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
    load_tool('tools/analysis/benchmark.py').main(
        ['--report', osp.join(REPO, 'docs/benchmark_cpu.json')])
    printed = capsys.readouterr().out
    # the README's results table: tiny 28.4 vs 55.7 images/s, memory 1212 / 271 MiB
    assert '| tiny vs ResNet_CIFAR18 | 32 | 32 | 0.55 / 0.56 (0.982) | 28.4 / 55.7 (0.51) | ' \
        '1212 / 271 (4.47) |' in printed
    assert '| **dense / sparse** | **2.61x** |' in printed


def test_step_time_trains_a_config_on_generated_official_files():
    run = subprocess.run(
        [sys.executable, 'tools/analysis/step_time.py', 'configs/resnet_mnist.py',
         '--steps', '1', '--warmup', '1'], cwd=REPO, capture_output=True, text=True,
        timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'STEP configs/resnet_mnist.py:' in run.stdout and '| `resnet_mnist.py` | 128 |' \
        in run.stdout

"""The benchmark and step-time tools run and report what they promise (their numbers are
not asserted: speed lives in docs/performance.md)."""
import json
import subprocess
import sys

from helpers import REPO


def test_benchmark_writes_the_promised_fields(tmp_path):
    out = tmp_path / 'bench.json'
    run = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', '--quick', '--json', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in ('sparse_vs_dense_speedup', 'time_ratio_E32_vs_E4'):
        assert result[key] > 0
    for key in ('pce_vs_resnet_throughput', 'pce_vs_resnet_peak_memory'):
        assert set(result[key]) == {'tiny', 'r18', 'r50'}
    for arch in ('tiny', 'r18', 'r50'):
        row = result['pce_vs_resnet'][arch]
        assert row['pce_active_gflops'] < row['pce_total_gflops']
        assert row['pce_active_params_m'] < row['pce_params_m']
    assert set(result['dispatch']['scaling_in_E']) == {'2', '4', '8', '16', '32'}
    assert result['threads'] >= 1 and '| **dense / sparse** |' in run.stdout


def test_step_time_trains_a_config_on_generated_official_files():
    run = subprocess.run(
        [sys.executable, 'tools/analysis/step_time.py', 'configs/resnet_mnist.py',
         '--steps', '1', '--warmup', '1'], cwd=REPO, capture_output=True, text=True,
        timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'STEP configs/resnet_mnist.py:' in run.stdout and '| `resnet_mnist.py` | 128 |' \
        in run.stdout

"""The benchmark and step-time tools measure what they name and report what they measured.

Speed itself is not asserted (it lives in docs/performance.md). Where a section's figures
are times, the tests hand it a clock that counts the FLOPs a step runs instead
(:class:`CountFlops`): each reported time must then be the work of the model or block the
section names, which is known independently (by hand, or from the saved run's FLOPs).
"""
import json
import os.path as osp
import re
import subprocess
import sys
import time

import pytest
import torch
from helpers import NARROW_ARCH, REPO, load_tool
from torch.utils.flop_counter import FlopCounterMode

from pce_mm.analysis.benchmark import run_benchmark
from pce_mm.analysis.benchmark_report import report
from pce_mm.analysis.block_benchmark import block_step, measure_context
from pce_mm.analysis.step_benchmark import BLOCK_PARTS, label_block_parts, profile_step
from pce_mm.analysis.timing import Timer
from pce_mm.analysis.train_step import pce_spec, train_step

SAVED = osp.join(REPO, 'docs/benchmark_cpu_switched.json')     # the README's speed rows
SAVED_PROFILE = osp.join(REPO, 'docs/benchmark_cpu_pce_step.json')
PCE_VS_RESNET_KEYS = {'pce_vs_resnet', 'pce_vs_resnet_throughput', 'pce_vs_resnet_peak_memory'}
DISPATCH_KEYS = {'dispatch', 'sparse_vs_dense_speedup', 'time_ratio_E32_vs_E4'}


class CountFlops:
    """Stands in for :class:`Timer`: a step's "seconds" are the FLOPs it runs (torch's
    ``FlopCounterMode``: 2 per multiply-add; convolutions and products, not norms)."""
    device, warmup, repeats = 'cpu', 0, 1

    def __call__(self, steps):
        flops = {}
        for name, step in steps.items():
            with FlopCounterMode(display=False) as counter:
                step()
            flops[name] = counter.get_total_flops()
        return flops


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def key_paths(tree: dict, prefix: tuple = ()) -> set:
    paths = set()
    for key, value in tree.items():
        paths.add(prefix + (key, ))
        if isinstance(value, dict):
            paths |= key_paths(value, prefix + (key, ))
    return paths


def table_rows(text: str, first_cell: str) -> list:
    """The cells of the markdown rows of ``text`` whose first cell starts ``first_cell``."""
    return [[c.strip() for c in line.strip().strip('|').split('|')]
            for line in text.splitlines() if line.startswith(f'| {first_cell}')]


def assert_shows(cells: list, values: list) -> None:
    """Every number printed in ``cells``, in order, is the value at the same place in
    ``values``, to the digits printed."""
    printed = re.findall(r'-?\d+(?:\.\d+)?', ' '.join(cells))
    assert len(printed) == len(values), (printed, values)
    for text, value in zip(printed, values):
        digits = len(text.partition('.')[2])
        assert abs(float(text) - value) <= 0.5001 * 10**-digits, (text, value, cells)


def assert_report_shows(result: dict, printed: str) -> None:
    """The tables show, column by column, the figures of ``result``'s sections."""
    for arch, o in result.get('pce_vs_resnet', {}).items():
        pce, ref = o['pce'], o['resnet_step']
        [cells] = table_rows(printed, f'{arch} vs ')
        assert_shows(cells[1:], [
            o['input'][-1], o['input'][0], o['pce_active_gflops'], o['resnet_gflops'],
            o['flops_ratio'], pce['images_per_s'], ref['images_per_s'], o['throughput_ratio'],
            pce['memory_mib'], ref['memory_mib'], o['peak_memory_ratio'],
            pce['memory_mib_with_cp'], o['peak_memory_ratio_with_cp'],
            pce['phase1_images_per_s'], o['phase1_throughput_ratio'],
            pce['phase1_host_reads'], pce['host_reads']])
    if 'dispatch' in result:
        d = result['dispatch']
        for name, t in [('dense, 8', d['dense'])] + [
                (f'sparse, {e}', t) for e, t in d['scaling_in_E'].items()]:
            rows = table_rows(printed, f'{name} |')
            assert rows, name
            for cells in rows:
                assert_shows(cells[1:], [t['stage_s'] * 1e3, t['block_s'] * 1e3])
        [cells] = table_rows(printed, '**dense / sparse**')
        assert_shows(cells[1:], [d['sparse_vs_dense_speedup'],
                                 d['sparse_vs_dense_block_speedup']])
        [cells] = table_rows(printed, '**E=32 / E=4**')
        assert_shows(cells, [32, 4, d['time_ratio_E32_vs_E4'], d['block_time_ratio_E32_vs_E4']])
    for arch, o in result.get('profile', {}).items():
        [cells] = table_rows(printed, f'{arch} | (')
        parts = [o['forward_parts_ms'][p] for p in BLOCK_PARTS + ('dispatch_and_rest',
                                                                  'outside_blocks')]
        assert_shows(cells[1:-1], o['input'] + [o['forward_ms']] + parts + [o['backward_ms']])
        assert_shows([re.sub(r'\w*[A-Za-z_]\w* ', '', cells[-1])],
                     list(o['backward_top_ms'].values()))


def test_timer_times_the_steps_in_turns_and_gives_each_its_own_median():
    calls = []

    def sleeps(name, seconds):
        def step():
            calls.append(name)
            time.sleep(seconds)
        return step

    medians = Timer('cpu', warmup=1, repeats=3)(dict(slow=sleeps('slow', 0.04),
                                                     fast=sleeps('fast', 0.002)))
    assert calls == ['slow', 'fast'] * 4                  # the warm-up, then three rounds
    assert medians['slow'] >= 0.04 and medians['fast'] < medians['slow'] / 2


@pytest.fixture(scope='module')
def tiny_run():
    """The whole-model section at ``tiny``, timed by FLOPs (one run for the tests below)."""
    return run_benchmark(['pce_vs_resnet'], CountFlops(), quick=True, archs=['tiny'])


@pytest.fixture(scope='module')
def dispatch_run():
    """The block section, timed by FLOPs (one run for the tests below)."""
    return run_benchmark(['dispatch'], CountFlops(), quick=True)


def test_pce_vs_resnet_writes_every_field_of_the_saved_run(tiny_run):
    saved = load(SAVED)
    assert set(tiny_run) == set(saved) - DISPATCH_KEYS
    row = tiny_run['pce_vs_resnet']['tiny']
    assert key_paths(row) == key_paths(saved['pce_vs_resnet']['tiny'])
    assert tiny_run['pce_vs_resnet_throughput'] == {'tiny': row['throughput_ratio']}
    assert tiny_run['pce_vs_resnet_peak_memory'] == {'tiny': row['peak_memory_ratio']}


def test_pce_vs_resnet_counts_the_readme_flops_and_parameters(tiny_run):
    """FLOPs and parameters do not depend on the batch: the saved run's (32 px, as here).
    "total" is the dense dispatch (every expert on every patch), "active" the sparse path:
    a total counted on the sparse model would equal the active figure."""
    row, saved = tiny_run['pce_vs_resnet']['tiny'], load(SAVED)['pce_vs_resnet']['tiny']
    for key in ('pce_active_gflops', 'pce_total_gflops', 'pce_context_gflops',
                'resnet_gflops', 'pce_params_m', 'pce_active_params_m', 'resnet_params_m'):
        assert row[key] == pytest.approx(saved[key], rel=1e-6), key


def test_pce_vs_resnet_counts_the_host_reads_of_each_phase(tiny_run):
    """One read in phase 1 (the finite check); in phase 2 one per block and per context,
    the finite check and the router statistics (docs/performance.md, "Host reads a step")."""
    pce = tiny_run['pce_vs_resnet']['tiny']['pce']
    assert (pce['phase1_host_reads'], pce['host_reads']) == (1, 17)


def test_pce_vs_resnet_memory_lies_above_the_parameters_floor(tiny_run):
    """The parameters, their gradients and momentum are a floor under each step's memory;
    with_cp keeps less than the plain step; the twin's whole step needs less than PCE's
    parameters alone (docs/performance.md, "Memory": at every preset)."""
    row = tiny_run['pce_vs_resnet']['tiny']
    floor = 3 * 4 * row['pce_params_m'] * 1e6 / 2**20
    assert floor < row['pce']['memory_mib_with_cp'] < row['pce']['memory_mib']
    resnet_floor = 3 * 4 * row['resnet_params_m'] * 1e6 / 2**20
    assert resnet_floor < row['resnet_step']['memory_mib'] < floor


def test_pce_vs_resnet_times_the_step_each_column_names(tiny_run):
    """Timed by FLOPs, a step's "seconds" are its work: 3x its forward's (input and weight
    gradients), 2 FLOPs a multiply-add. ResNet's is its counted FLOPs; phase 1 runs one
    expert on the whole map (0.31 GFLOPs an image: docs/performance.md, "The ceiling of
    the routed step"); the routed step runs k = 2 (more than phase 1) and at most the
    active FLOPs (less where Winograd takes a busy expert's tiles)."""
    row = tiny_run['pce_vs_resnet']['tiny']
    pce, ref, batch = row['pce'], row['resnet_step'], row['input'][0]
    assert ref['step_s'] == pytest.approx(3 * 2 * batch * row['resnet_gflops'] * 1e9, rel=0.02)
    assert pce['phase1_step_s'] == pytest.approx(3 * 2 * batch * 0.31e9, rel=0.05)
    assert pce['phase1_step_s'] < pce['step_s'] <= 3 * 2 * batch * row['pce_active_gflops'] * 1e9


def test_dispatch_writes_every_field_of_the_saved_run(dispatch_run):
    saved = load(SAVED)
    assert set(dispatch_run) == set(saved) - PCE_VS_RESNET_KEYS
    out = dispatch_run['dispatch']
    assert key_paths(out) == key_paths(saved['dispatch'])
    assert out['scaling_in_E']['8'] == out['sparse']
    assert dispatch_run['sparse_vs_dense_speedup'] == out['sparse_vs_dense_speedup']
    assert dispatch_run['time_ratio_E32_vs_E4'] == out['time_ratio_E32_vs_E4']


def expert_and_1x1_flops(block: dict) -> tuple:
    """By hand: one expert's 3x3 convolution over the block's map, and one 1x1 between the
    block's and the experts' widths, forward."""
    b, s = block['batch'], block['size']
    return (2 * b * s * s * block['expert_channels']**2 * 9,
            2 * b * s * s * block['channels'] * block['expert_channels'])


def test_dispatch_times_a_dense_and_a_sparse_expert_stage(dispatch_run):
    """Dense runs all E = 8 experts on the map, sparse k = 2; forward and backward are 3x
    the forward (input and weight gradients). The router adds under 1%."""
    out = dispatch_run['dispatch']
    expert, _ = expert_and_1x1_flops(out['block'])
    assert out['dense']['stage_s'] == pytest.approx(8 * 3 * expert, rel=0.01)
    assert out['sparse']['stage_s'] == pytest.approx(2 * 3 * expert, rel=0.01)
    assert out['sparse_vs_dense_speedup'] == pytest.approx(8 / 2, rel=0.01)


def test_dispatch_whole_block_adds_the_reduce_and_combine(dispatch_run):
    """2x the 1x1's forward for the reduce (its input needs no gradient), 3x for the
    combine, on top of the same expert stage."""
    out = dispatch_run['dispatch']
    _, one_by_one = expert_and_1x1_flops(out['block'])
    for t in (out['dense'], out['sparse']):
        assert t['block_s'] - t['stage_s'] == pytest.approx(5 * one_by_one, rel=0.01)


def test_dispatch_scales_e_at_the_same_routed_work(dispatch_run):
    """The routed work does not grow with E (from E = 8 the experts' batches are below
    Winograd's minimum of tiles, so all are convolved alike): only the router's last layer
    does, 64 hidden channels to E logits for each patch (3x: input and weight gradients)."""
    out = dispatch_run['dispatch']
    block, scaling = out['block'], out['scaling_in_E']
    patches = block['batch'] * (block['size'] // block['patch_size'])**2
    for e in (16, 32):
        grown = scaling[str(e)]['stage_s'] - scaling['8']['stage_s']
        assert grown == pytest.approx(3 * 2 * patches * 64 * (e - 8), rel=0.05)


def test_context_placements_each_build_the_model_they_name():
    # PCENet-tiny's layout at half its widths (every stage's context then has 8 heads' worth
    # of value channels), two blocks a stage: 'block' places twice the contexts 'stage' does
    arch = dict(NARROW_ARCH, channels=(32, 64, 128, 256), depths=(2, ) * 4)
    out = measure_context(CountFlops(), side=(32, 32), arch=arch)
    rows = out['placements']
    assert [(r['context'], r['stages']) for r in rows.values()] == [
        ('none', '2-4 (preset)'), ('stage', '2-4 (preset)'), ('stage', '1-4'),
        ('block', '2-4 (preset)'), ('block', '1-4')]
    # A placement whose contexts include another's does more work, counted and run.
    more = [('none, stages 2-4', 'stage, stages 2-4'), ('stage, stages 2-4', 'stage, stages 1-4'),
            ('stage, stages 2-4', 'block, stages 2-4'), ('stage, stages 1-4', 'block, stages 1-4'),
            ('block, stages 2-4', 'block, stages 1-4')]
    for fewer, placement in more:
        for figure in ('gflops', 'forward_s'):
            assert rows[fewer][figure] < rows[placement][figure], (fewer, placement, figure)


def test_profile_labels_each_block_part_once_a_call_and_removes_its_hooks():
    _, model, x = train_step(pce_spec('tiny'), 32, 2, 'cpu', phase=2, switch=False)
    handles = label_block_parts(model)
    with torch.profiler.profile() as prof:
        model(x)
    for handle in handles:
        handle.remove()
    calls = {e.key: e.count for e in prof.key_averages() if e.key.startswith('pce.')}
    blocks = model.blocks()
    assert calls == {'pce.block': len(blocks), 'pce.reduce': len(blocks),
                     'pce.router': len(blocks), 'pce.combine': len(blocks),
                     'pce.experts': sum(block.num_experts for block in blocks),
                     'pce.context': sum(block.context is not None for block in blocks)}
    ms = profile_step(model, x, 'cpu')
    assert {'pce.forward', 'pce.backward', 'pce.block'} <= set(ms)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_benchmark_saves_a_run_that_report_prints_again(tmp_path, capsys):
    bench = load_tool('tools/analysis/benchmark.py')
    out = tmp_path / 'bench.json'
    bench.main(['--quick', '--arch', 'tiny', '--sections', 'profile', '--json', str(out)])
    printed = capsys.readouterr().out
    result = load(out)
    assert set(result['profile']) == {'tiny'}
    profile, saved = result['profile']['tiny'], load(SAVED_PROFILE)['profile']['tiny']
    assert set(profile) == set(saved)
    assert set(profile['forward_parts_ms']) == set(saved['forward_parts_ms'])
    parts = profile['forward_parts_ms']
    assert min(parts[p] for p in BLOCK_PARTS) > 0 and parts['outside_blocks'] > 0
    assert parts['dispatch_and_rest'] >= 0               # the parts lie inside the blocks
    top = profile['backward_top_ms']
    assert len(top) == 5 and list(top.values()) == sorted(top.values(), reverse=True)
    assert not any(op.startswith(('aten::', 'pce.')) for op in top)   # backward nodes only
    assert_report_shows(result, printed)
    bench.main(['--report', str(out)])
    assert capsys.readouterr().out == printed


def test_report_shows_each_saved_figure_in_its_column():
    for path in (SAVED, SAVED_PROFILE):
        result = load(path)
        assert_report_shows(result, report(result))


def test_benchmark_reports_the_saved_readme_figures_without_measuring(capsys):
    bench = load_tool('tools/analysis/benchmark.py')
    bench.main(['--report', osp.join(REPO, 'docs/benchmark_cpu.json')])
    printed = capsys.readouterr().out
    # the first saved run (2026-12-01): tiny 28.4 vs 55.7 images/s, memory 1212 / 271 MiB
    assert '| tiny vs ResNet_CIFAR18 | 32 | 32 | 0.55 / 0.56 (0.982) | 28.4 / 55.7 (0.51) | ' \
        '1212 / 271 (4.47) | not measured | not measured | not measured |' in printed
    assert '| **dense / sparse** | **2.61x** |' in printed
    # the README's results table (2c9a523, phase 2 after the switch)
    bench.main(['--report', SAVED])
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
    step, model, _ = train_step(pce_spec('tiny'), 32, 4, 'cpu', phase=2)
    assert model.switched
    loads = []
    for block in model.blocks():
        block.router.register_forward_hook(lambda mod, args, out: loads.append(
            torch.bincount(out.indices.flatten(), minlength=mod.num_experts)))
    for _ in range(2):
        step()
    assert len(loads) == 2 * len(model.blocks())
    for load_ in loads:
        assert int((load_ > 0).sum()) > 4 and load_.max() <= 3 * load_.float().mean()


@pytest.mark.parametrize('whole', [False, True], ids=['expert_stage', 'whole_block'])
def test_benchmark_block_routes_balanced(whole):
    """The dispatch section's block routes every expert a share near 1 / E on each timed
    step."""
    step, block = block_step(8, 'sparse', 'cpu', 2, whole)
    loads = []
    block.router.register_forward_hook(lambda mod, args, out: loads.append(
        torch.bincount(out.indices.flatten(), minlength=mod.num_experts)))
    for _ in range(3):
        step()
    assert len(loads) == 3
    for load_ in loads:
        assert int((load_ > 0).sum()) == 8 and load_.max() <= 2 * load_.float().mean()

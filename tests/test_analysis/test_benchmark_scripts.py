"""The measurements in benchmarks/ run, on tiny inputs, and measure what they name; they and
the benchmark's modules import one way: tools -> pce_mm.analysis -> pce_mm.models."""
import ast
import glob
import os.path as osp
import re

import pytest
import torch
from helpers import REPO, load_tool

from pce_mm.analysis.train_step import pce_spec, train_step

# one thread more would slow the tests' other workers; fewer would change nothing here
THREADS = ['--threads', str(torch.get_num_threads())]


def timings(line: str) -> dict:
    """``{name: seconds}`` of a line ``... name 0.123 s ...``."""
    return {name: float(t) for name, t in re.findall(r'(\w+):? (\d+\.\d+) s\b', line)}


@pytest.mark.parametrize('path', sorted(
    glob.glob(osp.join(REPO, 'benchmarks/*.py')) +
    glob.glob(osp.join(REPO, 'pce_mm/analysis/*.py'))), ids=osp.basename)
def test_measuring_code_imports_nothing_from_the_tools(path):
    source = open(path).read()
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    # the probes once put tools/analysis on sys.path to import the benchmark tool
    assert not {n for n in names if n.split('.')[0] in ('tools', 'benchmark', 'step_time')}
    assert 'sys.path' not in source


def test_ceiling_runs_the_first_k_experts_of_every_block_on_the_whole_map():
    ceiling = load_tool('benchmarks/routing_ceiling.py')
    _, model, x = train_step(pce_spec('tiny'), 32, 2, 'cpu', phase=1)
    ceiling.use_full_map_experts(model)
    maps, calls = {}, []
    for b, block in enumerate(model.blocks()):
        block.reduce.register_forward_hook(
            lambda mod, args, out, b=b: maps.update({b: tuple(out.shape[-2:])}))
        for e, expert in enumerate(block.experts.experts):
            expert.register_forward_pre_hook(
                lambda mod, args, b=b, e=e: calls.append((b, e, tuple(args[0].shape[-2:]))))
    with torch.no_grad():
        model(x)
    k, halo = model.blocks()[0].top_k, model.blocks()[0].experts.halo
    assert calls == [(b, e, (maps[b][0] + 2 * halo, maps[b][1] + 2 * halo))
                     for b in range(len(model.blocks())) for e in range(k)]


def test_routing_ceiling_times_each_variant_against_the_twin(capsys):
    load_tool('benchmarks/routing_ceiling.py').main(
        ['--arch', 'tiny', '--batch', '2', '--warmup', '0', '--repeats', '1'] + THREADS)
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith('tiny (batch 2, 32 px): ')
    times = timings(line)
    assert list(times) == ['resnet', 'routed', 'routed_no_context', 'k_full_map_experts',
                           'phase_1']
    for name, ratio in re.findall(r'(\w+) \d+\.\d+ s \((\d+\.\d+)\)', line):
        assert float(ratio) == pytest.approx(times['resnet'] / times[name], abs=0.01 + 0.01 *
                                             float(ratio))


def test_dispatch_share_times_the_first_block_of_each_tiny_stage(capsys):
    load_tool('benchmarks/dispatch_share.py').main(
        ['--batch', '2', '--warmup', '0', '--repeats', '1'] + THREADS)
    lines = capsys.readouterr().out.splitlines()
    # tiny's stages: expert channels 48 / 88 / 176 / 352 on maps of 32 / 16 / 8 / 4 pixels,
    # patches of 8 / 4 / 2 / 1 (docs/performance.md's table, at batch 2)
    shapes = [f'(2, {c}, {s}, {s}), patch {p}:'
              for c, s, p in ((48, 32, 8), (88, 16, 4), (176, 8, 2), (352, 4, 1))]
    assert [line.split(': ')[0] + ':' for line in lines] == shapes
    for line in lines:
        assert re.findall(r'(\w+) \d+\.\d+ ms', line) == ['sparse', 'crop', 'alone', 'full']


def test_step_details_finite_times_tiny_with_and_without_the_check(capsys):
    load_tool('benchmarks/step_details.py').main(
        ['finite', '--batch', '2', '--warmup', '0', '--repeats', '1'] + THREADS)
    line = capsys.readouterr().out
    # the check is the one host read a step that check_finite=False removes
    assert re.findall(r'check_finite=(\w+): \d+\.\d+ s \((\d+) host reads\)', line) == [
        ('True', '17'), ('False', '16')]


def test_step_details_faults_counts_page_faults_of_pce_and_its_twin(capsys):
    load_tool('benchmarks/step_details.py').main(
        ['faults', '--batch', '2', '--warmup', '0', '--repeats', '1'] + THREADS)
    lines = capsys.readouterr().out.splitlines()
    assert [re.match(r'(\w+): \d+\.\d+ s a step, \d+ minor page faults a step$', line)[1]
            for line in lines] == ['pce', 'resnet']


def test_step_details_eval_times_the_digits_checkpoints(tmp_path, capsys):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    checkpoints = []
    for name in ('pce', 'resnet'):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = MODELS.build(Config.fromfile(f'{REPO}/configs/{name}_digits.py').model)
        checkpoints.append(str(tmp_path / f'{name}.pth'))
        torch.save(dict(state_dict=model.state_dict()), checkpoints[-1])
    details = load_tool('benchmarks/step_details.py')
    tiny = ['--batch', '2', '--warmup', '0', '--repeats', '1'] + THREADS
    details.main(['eval', *checkpoints] + tiny)
    assert list(timings(capsys.readouterr().out)) == ['pce', 'resnet']
    with pytest.raises(RuntimeError, match='state_dict'):       # each config its checkpoint
        details.main(['eval', *checkpoints[::-1]] + tiny)

"""tools/analysis/study.py: every (arm, lr, seed) through the real tools on tiny files,
records that make a second invocation run nothing, failed runs kept as failed, and the
summary's statistics."""
import csv
import glob
import json
import math
import os
import os.path as osp

import pytest
from helpers import REPO, load_tool

from pce_mm.analysis.study import (claim, format_table, load_study, plan, read_result,
                                   release, summarise)
from pce_mm.datasets.synthetic import write_mnist

TINY_OPTIONS = {'train_dataloader.batch_size': 8, 'train_dataloader.num_workers': 0,
                'train_dataloader.persistent_workers': False,
                'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
                'val_dataloader.batch_size': 4, 'train_cfg.max_epochs': 1,
                'default_hooks.checkpoint.max_keep_ckpts': 1}


def write_study(path: str, text: str) -> str:
    with open(path, 'w') as f:
        f.write(text)
    return path


def test_a_study_runs_each_arm_and_seed_once_and_keeps_failed_runs(tmp_path):
    data = str(tmp_path / 'mnist')
    write_mnist(data, num_train=8, num_test=4)                 # one iteration an epoch
    config = osp.join(REPO, 'configs/resnet_mnist.py')
    study = write_study(str(tmp_path / 'tiny.py'), f'''
description = 'two arms, two seeds'
arms = dict(resnet=dict(config={config!r}),
            broken=dict(config={config!r}, options={{'model.backbone.depth': 19}}))
seeds = [0, 1]
metric = 'accuracy/top1'
input_shape = (1, 28, 28)
options = {{**{TINY_OPTIONS!r}, 'data_root': {data!r}}}
work_dir = {str(tmp_path / 'work')!r}
results_dir = {str(tmp_path / 'results')!r}
curve = dict(x_label='size', series=dict(R=[(1, 'resnet'), (2, 'tiny:resnet')],
                                         B=[(1, 'broken')]))
''')
    tool = load_tool('tools/analysis/study.py')
    rows = tool.main([study])
    results = str(tmp_path / 'results')
    records = sorted(osp.basename(r.record) for r in plan(load_study(study)))
    assert records == ['broken_seed0.json', 'broken_seed1.json', 'resnet_seed0.json',
                       'resnet_seed1.json']
    for name in ('runs.csv', 'summary.csv', 'table.md', 'seeds.png', 'cost.png'):
        assert osp.getsize(osp.join(results, name)) > 0, name
    with open(osp.join(results, 'runs.csv')) as f:
        runs = list(csv.DictReader(f))
    assert sorted((r['arm'], r['seed'], r['status']) for r in runs) == [
        ('broken', '0', 'failed'), ('broken', '1', 'failed'), ('resnet', '0', 'ok'),
        ('resnet', '1', 'ok')]
    ok = [r for r in runs if r['status'] == 'ok']
    assert all(0 <= float(r['val/accuracy/top1']) <= 100 and float(r['gflops']) > 0.1
               for r in ok)
    failed = json.load(open(osp.join(results, 'runs', 'broken_seed0.json')))
    assert 'tools/train.py exited with' in failed['error'] and 'depth' in failed['error']
    resnet = next(r for r in rows if r['arm'] == 'resnet')
    broken = next(r for r in rows if r['arm'] == 'broken')
    assert (resnet['n'], resnet['failed'], broken['n'], broken['failed']) == (2, 0, 0, 2)
    table = open(osp.join(results, 'table.md')).read()
    assert '| broken |' in table and '0 (2 failed)' in table
    # The seed went into each run's config.
    logs = [open(osp.join(str(tmp_path / 'work'), 'resnet', f'seed{s}', 'run.log')).read()
            for s in (0, 1)]
    assert 'randomness.seed=0' in logs[0] and 'randomness.seed=1' in logs[1]

    # A second invocation finds every record and runs nothing.
    mtimes = {r: osp.getmtime(osp.join(results, 'runs', r)) for r in records}
    tool.main([study])
    assert {r: osp.getmtime(osp.join(results, 'runs', r)) for r in records} == mtimes

    # The results page is made from the records alone.
    page_tool = load_tool('tools/analysis/results_page.py')
    page = page_tool.main([study, '--out', str(tmp_path / 'results.md')])
    assert '## tiny' in page and '(4 of 4 runs recorded)' in page
    assert table in page and '![tiny: seeds](results/seeds.png)' in page
    assert '![tiny: curve](results/curve.png)' in page
    assert osp.getsize(osp.join(results, 'curve.png')) > 0
    series = page_tool.curve_points(load_study(study), study, summarise(
        load_study(study), [read_result(r) for r in plan(load_study(study))]))
    assert [x for x, _ in series['R']] == [1, 2] and series['R'][1][1]['n'] == 2
    assert series['B'] == [(1, None)]            # its runs failed: no point, no error
    wrong = write_study(str(tmp_path / 'wrong.py'), open(study).read().replace(
        "(2, 'tiny:resnet')", "(2, 'tiny:nope')"))
    with pytest.raises(KeyError, match="curve point 'tiny:nope': tiny has no arm 'nope'"):
        page_tool.curve_points(load_study(wrong), wrong, [])
    assert '- broken seed 0: `' in page and 'depth' in page.split('- broken seed 0:')[1]
    assert not osp.exists(str(tmp_path / 'work' / 'resnet' / 'seed0.claim'))


def record(arm, seed, value, lr=None, status='ok'):
    return dict(arm=arm, lr=lr, seed=seed, status=status,
                metrics={} if status != 'ok' else {'test/acc': value}, train_s=10.0 * seed,
                gflops=1.0)


def test_summary_takes_each_arms_best_lr_and_welchs_test_against_the_reference(tmp_path):
    study = load_study(write_study(str(tmp_path / 's.py'), f'''
arms = dict(a=dict(config={osp.join(REPO, 'configs/resnet_mnist.py')!r}),
            b=dict(config={osp.join(REPO, 'configs/pce_mnist.py')!r}))
reference = 'a'
split = 'test'
metric = 'acc'
'''))
    tied = [record('a', s, v, lr=0.4) for s, v in enumerate([89.0, 91.0, 93.00001])]
    results = [record('a', s, v, lr=0.1) for s, v in enumerate([90.0, 91.0, 92.0])]
    results += [record('a', s, v, lr=0.2) for s, v in enumerate([80.0, 81.0, 82.0])]
    results += [record('b', s, v) for s, v in enumerate([93.0, 94.0, 95.0])]
    results += [record('b', 3, None, status='failed')]
    rows = {(r['arm'], r['lr']): r for r in summarise(study, tied + results)}
    best = rows[('a', 0.1)]
    # 0.1 and 0.4 tie on the mean; 0.1 varies less over seeds.
    assert best['best'] and not rows[('a', 0.2)]['best'] and not rows[('a', 0.4)]['best']
    assert (best['mean'], best['std'], best['n']) == (91.0, 1.0, 3)
    b = rows[('b', None)]
    assert (b['n'], b['failed'], b['train_s']) == (3, 1, 10.0)
    # Welch: difference 3, standard error sqrt(1/3 + 1/3); t = 3.67 on 4 df, p = 0.021.
    assert b['diff'] == 3.0 and b['se'] == pytest.approx(math.sqrt(2 / 3))
    assert b['p'] == pytest.approx(0.0213, abs=1e-3)
    # Paired over seeds: b led in all three by exactly 3, so the paired p is 0.
    assert (b['higher'], b['shared'], b['p_paired']) == (3, 3, 0.0)
    assert '| 3 of 3 | < 0.001 |' in format_table(study, list(rows.values()))
    close = summarise(study, results[:3] + [record('b', s, v)
                                            for s, v in enumerate([90.5, 92.0, 91.2, 99.0])])
    table = format_table(study, close)
    assert 'within noise' in table and '| **a** |' in table and '| vs a |' in table
    # Seed 3 has no partner in a; over seeds 0-2 the differences 0.5, 1.0, -0.8 give
    # scipy.stats.ttest_rel's p = 0.706.
    b = next(r for r in close if r['arm'] == 'b')
    assert (b['higher'], b['shared']) == (2, 3)
    assert b['p_paired'] == pytest.approx(0.7060, abs=1e-4)
    assert '| 2 of 3 | 0.706 |' in table

    # An arm with its own reference is compared with that arm, named in its cell.
    study.arms['c'] = dict(config=study.arms['b']['config'], reference='b')
    c = [record('c', s, v) for s, v in enumerate([95.0, 96.0, 97.0])]
    rows = {r['arm']: r for r in summarise(study, results + c)}
    assert (rows['c']['diff'], rows['b']['diff']) == (2.0, 3.0)
    table = format_table(study, list(rows.values()))
    assert '| vs its reference |' in table and '+2.00 ± 0.82 (vs b)' in table
    # A metric on a 0-1 scale (mAP) keeps three decimals.
    small = [dict(r, metrics={'test/acc': r['metrics']['test/acc'] / 100}) if r['metrics']
             else r for r in results]
    assert '| 0.910 ± 0.010 |' in format_table(study, summarise(study, small))


def test_runners_sharing_a_study_take_each_run_once_and_free_a_dead_runners_run(tmp_path):
    study = load_study(write_study(str(tmp_path / 's.py'), f'''
arms = dict(a=dict(config={osp.join(REPO, 'configs/resnet_mnist.py')!r}))
reference = 'a'
seeds = [0, 1]
split = 'val'
metric = 'acc'
work_dir = {str(tmp_path / 'work')!r}
'''))
    first, second = plan(study)
    assert claim(first) and not claim(first)        # this (live) process holds it
    assert claim(second)
    release(first)
    assert claim(first)
    with open(second.work_dir + '.claim', 'w') as f:
        f.write('999999999')                        # a runner that no longer exists
    assert claim(second)
    with open(second.work_dir + '.claim') as f:
        assert f.read() == str(os.getpid())


def test_an_arm_may_run_more_seeds_than_the_study(tmp_path):
    config = osp.join(REPO, 'configs/resnet_mnist.py')
    path = write_study(str(tmp_path / 's.py'), f'''
arms = dict(a=dict(config={config!r}), b=dict(config={config!r}, seeds=[0, 1, 2, 3]))
seeds = [0, 1]
metric = 'acc'
''')
    assert [(r.arm, r.seed) for r in plan(load_study(path))] == [
        ('a', 0), ('b', 0), ('a', 1), ('b', 1), ('b', 2), ('b', 3)]
    write_study(path, open(path).read().replace('seeds=[0, 1, 2, 3]', 'seeds=[]'))
    with pytest.raises(ValueError, match="arm 'b' has an empty `seeds`"):
        load_study(path)
    write_study(path, open(path).read().replace('seeds=[]', "reference='z'"))
    with pytest.raises(KeyError, match="arm 'b' has reference 'z', which is not an arm"):
        load_study(path)
    write_study(path, open(path).read().replace("reference='z'", '') +
                "curve = dict(x_label='n', series=dict(A=[(1, 'z')]))\n")
    with pytest.raises(ValueError, match='curve takes x_label and series'):
        load_study(path)


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(REPO, 'configs/studies/*.py'))),
                         ids=osp.basename)
def test_every_arm_of_a_shipped_study_loads_and_builds_its_backbone(path):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    study = load_study(path)
    runs = {run.arm: run for run in reversed(plan(study))}     # each arm's first run
    assert set(runs) == set(study.arms)
    for run in runs.values():
        cfg = Config.fromfile(run.config)
        cfg.merge_from_dict(run.options)
        init_default_scope(cfg.default_scope)
        backbone = MODELS.build(cfg.model.backbone)
        assert sum(p.numel() for p in backbone.parameters()) > 0, run.arm

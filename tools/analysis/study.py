"""Run a study (arms x learning rates x seeds) and summarise it: mean ± std over seeds per
arm, the difference to a reference arm, and what each arm costs.

    python tools/analysis/study.py configs/studies/STUDY.py [--dry-run] [--retry-failed]
        [--only ARM [ARM ...]] [--work-dir DIR] [--results-dir DIR]

Every run is an ordinary ``tools/train.py`` run in its own work dir, evaluated by
``tools/test.py`` on the validation split (and on the test split when the study's ``split``
is 'test'), one at a time. A run with a record in the results dir (passed or failed) is not
run again, so a stopped study goes on where it stopped. Several runners may share a study
(e.g. two with ``OMP_NUM_THREADS=1`` on two cores): each claims its run
(``<work dir>.claim``) and skips the runs another live runner holds. Writes into the results dir
(default ``docs/results/<study>``): ``runs/*.json`` (a record a run), ``runs.csv``,
``summary.csv``, ``table.md``, ``seeds.png`` (per arm: each seed and mean ± std) and
``cost.png`` (the metric against wall time and against active FLOPs).
"""
import argparse
import csv
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from typing import List, Optional

import pce_mm  # noqa: F401  (compat fixes and registration)
from pce_mm.analysis.study import (Run, claim, format_table, last_checkpoint, load_study,
                                   plan, read_result, release, remove_checkpoints,
                                   summarise, test_command, train_command, write_result)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('study', help='a study config, e.g. configs/studies/digits.py')
    parser.add_argument('--work-dir', help="the runs' work dirs go here (default: the "
                        "study's work_dir, else work_dirs/studies/<study>)")
    parser.add_argument('--results-dir', help="the records and summary go here (default: "
                        "the study's results_dir, else docs/results/<study>)")
    parser.add_argument('--only', nargs='+', metavar='ARM', help='run only these arms')
    parser.add_argument('--retry-failed', action='store_true',
                        help='run the failed runs again (passed runs are always kept)')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the runs and their commands, run nothing')
    return parser.parse_args(argv)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def _show(command: List[str]) -> str:
    """The command as typed in the repository root."""
    return ' '.join(osp.relpath(a, REPO) if a.startswith(REPO + os.sep) else a
                    for a in command)


def _call(command: List[str], log: str) -> tuple:
    """Runs ``command`` in the repository root with its output in ``log``; ``(return
    code, seconds)``. The repository's own package wins over an installed one."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    start = time.perf_counter()
    with open(log, 'a') as f:
        f.write('$ ' + _show(command) + '\n')
        f.flush()
        code = subprocess.call(command, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    return code, time.perf_counter() - start


def _tail(log: str, lines: int = 15) -> str:
    with open(log, errors='replace') as f:
        return ''.join(f.readlines()[-lines:])


def execute(run: Run, study, first_seed: bool) -> dict:
    """Trains, evaluates and costs one run; its record."""
    from mmengine.fileio import load
    from pce_mm.analysis.flops import backbone_gflops
    from pce_mm.analysis.routing import load_model

    if osp.isdir(run.work_dir):          # an interrupted run starts again from scratch
        shutil.rmtree(run.work_dir)
    os.makedirs(run.work_dir)
    log = osp.join(run.work_dir, 'run.log')
    python = sys.executable
    result = dict(arm=run.arm, lr=run.lr, seed=run.seed, config=osp.relpath(run.config, REPO),
                  options=run.options, status='failed', metrics={},
                  threads=os.environ.get('OMP_NUM_THREADS'),
                  commands=[_show(train_command(run, 'python'))])
    code, result['train_s'] = _call(train_command(run, python), log)
    checkpoint = last_checkpoint(osp.join(REPO, run.work_dir))
    if code != 0 or checkpoint is None:
        result['error'] = f'tools/train.py exited with {code}:\n' + _tail(log)
        return result
    splits = ['val'] + (['test'] if study.split == 'test' else [])
    result['test_s'] = 0.0
    for split in splits:
        command = test_command(run, python, checkpoint, split, study.test_options)
        result['commands'].append(_show(['python'] + command[1:]))
        code, seconds = _call(command, log)
        result['test_s'] += seconds
        if code != 0:
            result['error'] = f'tools/test.py --split {split} exited with {code}:\n' + _tail(log)
            return result
        metrics = load(osp.join(REPO, run.work_dir, f'metrics_{split}.json'))
        result['metrics'].update({f'{split}/{k}': float(v) for k, v in metrics.items()})
    _, model = load_model(osp.join(REPO, run.config), checkpoint,
                          options=run.options, pce_only=False)
    result['gflops'] = backbone_gflops(model, tuple(study.input_shape))
    result['status'] = 'ok'
    if study.keep_checkpoints == 'none' or (study.keep_checkpoints == 'first'
                                            and not first_seed):
        remove_checkpoints(osp.join(REPO, run.work_dir))
    return result


def write_outputs(study, runs: List[Run]) -> List[dict]:
    """runs.csv, summary.csv, table.md and the two figures, from every finished run."""
    from pce_mm.analysis.study_figures import draw_cost, draw_seeds
    results = [r for r in (read_result(run) for run in runs) if r is not None]
    if not results:
        return []
    metric_keys = sorted({k for r in results for k in r['metrics']})
    with open(osp.join(study.results_dir, 'runs.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['arm', 'lr', 'seed', 'status', 'train_s', 'test_s', 'gflops']
                        + metric_keys)
        for r in results:
            writer.writerow([r['arm'], r['lr'], r['seed'], r['status'], r.get('train_s'),
                             r.get('test_s'), r.get('gflops')]
                            + [r['metrics'].get(k) for k in metric_keys])
    rows = summarise(study, results)
    fields = ['arm', 'lr', 'n', 'failed', 'mean', 'std', 'diff', 'se', 'p', 'higher', 'shared',
              'p_paired', 'best', 'gflops', 'train_s']
    with open(osp.join(study.results_dir, 'summary.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    table = format_table(study, rows)
    with open(osp.join(study.results_dir, 'table.md'), 'w') as f:
        f.write(table + '\n')
    label = f'{study.split} {study.metric}'
    draw_seeds(rows, label, osp.join(study.results_dir, 'seeds.png'), study.reference)
    draw_cost(rows, label, osp.join(study.results_dir, 'cost.png'))
    print(table)
    return rows


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    study = load_study(args.study)
    if args.work_dir:
        study.work_dir = osp.abspath(args.work_dir)
    if args.results_dir:
        study.results_dir = osp.abspath(args.results_dir)
    runs = plan(study)
    if args.only:
        unknown = set(args.only) - set(study.arms)
        if unknown:
            raise KeyError(f'--only: {sorted(unknown)} are not arms of {args.study} '
                           f'({sorted(study.arms)})')
    todo = []
    for run in runs:
        result = read_result(run)
        if (args.only and run.arm not in args.only) or (
                result is not None and not (args.retry_failed and result['status'] != 'ok')):
            continue
        todo.append(run)
    print(f'study {study.name}: {len(runs)} runs, {len(runs) - len(todo)} finished or '
          f'skipped, {len(todo)} to run; results in {study.results_dir}')
    os.makedirs(study.results_dir, exist_ok=True)
    start, ran = time.perf_counter(), 0
    for i, run in enumerate(todo):
        lr = '' if run.lr is None else f' lr={run.lr:g}'
        elapsed = time.perf_counter() - start
        # runs another runner took cost this one nothing: the pace is of the runs run here
        left = f', about {_clock(elapsed / ran * (len(todo) - i))} left' if ran else ''
        print(f'[{i + 1}/{len(todo)}] {run.arm}{lr} seed={run.seed} '
              f'({_clock(elapsed)} so far{left})', flush=True)
        if args.dry_run:
            print('    ' + _show(train_command(run, 'python')))
            continue
        if not claim(run):
            print('    another runner holds it: skipped', flush=True)
            continue
        try:
            done = read_result(run)
            if done is not None and (done['status'] == 'ok' or not args.retry_failed):
                print('    another runner finished it: skipped', flush=True)
                continue
            result = execute(run, study, first_seed=run.seed == study.seeds[0])
            write_result(run, result)
            ran += 1
        finally:
            release(run)
        status = result['status'] if result['status'] != 'ok' else ', '.join(
            f'{k} {v:.4g}' for k, v in result['metrics'].items())
        print(f'    {status} ({result["train_s"]:.0f} s training)'
              + (f'; see {osp.join(run.work_dir, "run.log")}' if result['status'] != 'ok'
                 else ''), flush=True)
    return write_outputs(study, runs)


if __name__ == '__main__':
    main()

"""Studies: arms (a config and its overrides) x learning rates x seeds, run one at a time
through the project's own ``tools/train.py`` and ``tools/test.py``, and summarised as mean
and spread over seeds beside each arm's cost.

A study is a small mmengine config (``configs/studies/*.py``)::

    description = 'What the study asks.'
    arms = dict(resnet=dict(config='configs/resnet_digits.py'),
                pce_k1=dict(config='configs/pce_digits.py',
                            options={'model.backbone.top_k': 1},
                            seeds=[0, 1, 2, 3, 4],    # optional: this arm's own seeds
                            reference='resnet'))      # optional: its own reference arm
    reference = 'resnet'          # differences are taken to this arm
    seeds = [0, 1, 2]
    lrs = [0.025, 0.05, 0.1]      # optional: a grid over `lr_key`; else each config's own
    split = 'val'                 # what the table scores: 'val' (choices) or 'test' (final)
    metric = 'accuracy/top1'
    options = {...}               # --cfg-options of every run (e.g. a shorter schedule)
    test_options = {...}          # --cfg-options of the evaluation only
    input_shape = (1, 28, 28)     # of the image the active FLOPs are counted on
    # optional: results_page.py draws each series' metric against x; 'STUDY:ARM' is an arm
    # of another study beside this file (configs/studies/STUDY.py)
    curve = dict(x_label='training digits',
                 series=dict(ResNet=[(270, 'resnet'), (1079, 'digits:resnet')]))

Names starting with ``_`` are the file's own helpers and are ignored.

Every run has its own work dir (checkpoints, logs), ``<work_dir>/<arm>[/lr<lr>]/seed<seed>``,
and ends with a JSON record in ``<results_dir>/runs/`` (metrics, wall times, FLOPs, the
commands): a run with a record (passed or failed) is not run again. The records and the
summary live in ``results_dir`` (default ``docs/results/<study>``), small enough to commit,
so a study goes on from wherever its records are.
"""
import json
import math
import os
import os.path as osp
import statistics
from typing import Dict, List, NamedTuple, Optional, Sequence

from mmengine.config import Config

__all__ = ['Run', 'load_study', 'plan', 'train_command', 'test_command', 'read_result',
           'write_result', 'summarise', 'format_table']

SPLITS = ('val', 'test')
DEFAULTS = dict(description='', reference=None, seeds=[0, 1, 2], lrs=None,
                lr_key='optim_wrapper.optimizer.lr', split='val', metric=None,
                options={}, test_options={}, input_shape=(3, 224, 224), work_dir=None,
                results_dir=None, keep_checkpoints='first', curve=None)


class Run(NamedTuple):
    """One training run of a study and where it lives."""
    arm: str
    lr: Optional[float]
    seed: int
    config: str
    options: Dict[str, object]
    work_dir: str
    record: str        # the run's result file


def load_study(path: str) -> Config:
    """The study config at ``path`` with its defaults filled in, checked: a wrong setting
    raises naming it and the file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'study file {path} does not exist')
    cfg = Config.fromfile(path)
    for key in [k for k in cfg.keys() if k.startswith('_')]:   # the file's own helpers
        cfg.pop(key)
    unknown = set(cfg.keys()) - set(DEFAULTS) - {'arms', 'name'}
    if unknown:
        raise KeyError(f'{path}: unknown study settings {sorted(unknown)}; allowed: '
                       f"{sorted(set(DEFAULTS) | {'arms', 'name'})}")
    for key, value in DEFAULTS.items():
        cfg.setdefault(key, value)
    cfg.setdefault('name', osp.splitext(osp.basename(path))[0])
    # Absolute paths: the runs' tools run in the repository root, wherever this runs.
    cfg.work_dir = osp.abspath(cfg.work_dir or osp.join('work_dirs', 'studies', cfg.name))
    cfg.results_dir = osp.abspath(cfg.results_dir or osp.join('docs', 'results', cfg.name))
    if not cfg.get('arms'):
        raise KeyError(f'{path}: a study needs `arms`, a dict of name -> dict(config=...)')
    for name, arm in cfg.arms.items():
        if 'config' not in arm or set(arm) - {'config', 'options', 'lrs', 'seeds',
                                              'reference'}:
            raise KeyError(f'{path}: arm {name!r} takes `config` and optionally `options`, '
                           f'`lrs`, `seeds`, `reference`; got {sorted(arm)}')
        if arm.get('reference', name) not in cfg.arms:
            raise KeyError(f'{path}: arm {name!r} has reference {arm["reference"]!r}, which '
                           f'is not an arm ({sorted(cfg.arms)})')
        if 'seeds' in arm and not arm['seeds']:
            raise ValueError(f'{path}: arm {name!r} has an empty `seeds`')
        if not osp.isfile(arm['config']):
            raise FileNotFoundError(f'{path}: arm {name!r} names {arm["config"]}, which '
                                    'does not exist')
        arm['config'] = osp.abspath(arm['config'])
        for key, value in {**arm.get('options', {}), **cfg.options}.items():
            if isinstance(value, dict):
                raise TypeError(f'{path}: option {key!r} of arm {name!r} is a dict; '
                                '--cfg-options takes one key per leaf (e.g. a.b.c=1)')
    if cfg.reference is None:
        cfg.reference = next(iter(cfg.arms))
    if cfg.reference not in cfg.arms:
        raise KeyError(f'{path}: reference {cfg.reference!r} is not an arm '
                       f'({sorted(cfg.arms)})')
    if cfg.split not in SPLITS:
        raise ValueError(f'{path}: split must be one of {SPLITS}, got {cfg.split!r}')
    if not cfg.metric:
        raise KeyError(f'{path}: a study needs the `metric` its table scores, '
                       "e.g. 'accuracy/top1'")
    if cfg.keep_checkpoints not in ('none', 'first', 'all'):
        raise ValueError(f"{path}: keep_checkpoints must be 'none', 'first' or 'all', "
                         f'got {cfg.keep_checkpoints!r}')
    if not cfg.seeds:
        raise ValueError(f'{path}: seeds is empty')
    if cfg.curve is not None:
        points = [p for series in cfg.curve.get('series', {}).values() for p in series]
        if set(cfg.curve) != {'x_label', 'series'} or not points or any(
                len(p) != 2 or (':' not in p[1] and p[1] not in cfg.arms) for p in points):
            raise ValueError(f"{path}: curve takes x_label and series (name -> [(x, arm or "
                             f"'STUDY:ARM'), ...]) naming arms; got {cfg.curve}")
    return cfg


def plan(study: Config) -> List[Run]:
    """Every (arm, learning rate, seed) of the study, seed by seed: a study stopped early
    has every arm on its first seeds."""
    runs = []
    all_seeds = sorted({s for arm in study.arms.values()
                        for s in arm.get('seeds', study.seeds)})
    for seed in all_seeds:
        for name, arm in study.arms.items():
            if seed not in arm.get('seeds', study.seeds):
                continue
            for lr in arm.get('lrs', study.lrs) or [None]:
                options = {**study.options, **arm.get('options', {}),
                           'randomness.seed': seed}
                parts = [name]
                if lr is not None:
                    options[study.lr_key] = lr
                    parts.append(f'lr{lr:g}')
                parts.append(f'seed{seed}')
                runs.append(Run(name, lr, seed, arm['config'], options,
                                osp.join(study.work_dir, *parts),
                                osp.join(study.results_dir, 'runs', '_'.join(parts) + '.json')))
    return runs


def _cli(options: Dict[str, object]) -> List[str]:
    """``--cfg-options`` arguments: ``key=value``, lists and tuples in Python syntax
    (mmengine's ``DictAction`` reads them back)."""
    if not options:
        return []
    return ['--cfg-options'] + [f'{k}={v!r}' if isinstance(v, str) and ' ' in v
                                else f'{k}={v}' for k, v in options.items()]


def train_command(run: Run, python: str) -> List[str]:
    return [python, 'tools/train.py', run.config, '--work-dir', run.work_dir] + \
        _cli(run.options)


def test_command(run: Run, python: str, checkpoint: str, split: str,
                 test_options: Dict[str, object]) -> List[str]:
    return [python, 'tools/test.py', run.config, checkpoint, '--split', split,
            '--work-dir', osp.join(run.work_dir, f'eval_{split}'),
            '--out', osp.join(run.work_dir, f'metrics_{split}.json'), '--out-item', 'metrics'] \
        + _cli({**run.options, **test_options})


def read_result(run: Run) -> Optional[dict]:
    """The run's record, or ``None`` when it has not finished."""
    if not osp.isfile(run.record):
        return None
    with open(run.record) as f:
        return json.load(f)


def write_result(run: Run, result: dict) -> None:
    os.makedirs(osp.dirname(run.record), exist_ok=True)
    with open(run.record, 'w') as f:
        json.dump(result, f, indent=1)


def claim(run: Run) -> bool:
    """Takes the run for this process, so that several runners can share one study (e.g.
    two single-threaded runners on two cores). False when another live runner holds it."""
    os.makedirs(osp.dirname(run.work_dir) or '.', exist_ok=True)
    path = run.work_dir + '.claim'
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            with open(path) as f:
                holder = f.read().strip()
            if holder.isdigit() and _alive(int(holder)):
                return False
            try:                          # its runner died: the run is free again
                os.remove(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, 'w') as f:
            f.write(str(os.getpid()))
        return True
    return False


def release(run: Run) -> None:
    path = run.work_dir + '.claim'
    if osp.isfile(path):
        os.remove(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def last_checkpoint(work_dir: str) -> Optional[str]:
    """What mmengine's ``CheckpointHook`` names the last checkpoint (``last_checkpoint``)."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    return ckpt if osp.isfile(ckpt) else None


def remove_checkpoints(work_dir: str) -> None:
    for name in os.listdir(work_dir):
        if name.endswith('.pth'):
            os.remove(osp.join(work_dir, name))


def _welch(a: Sequence[float], b: Sequence[float]) -> tuple:
    """``(difference of means, its standard error, two-sided p)`` of Welch's t-test;
    ``nan`` where a side has fewer than two values."""
    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, 0.0, (1.0 if diff == 0 else 0.0)
    from scipy.stats import t
    # Welch-Satterthwaite degrees of freedom (scipy's ttest_ind warns on seeds that score
    # the same, which float32 metrics often do).
    dof = se ** 4 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return diff, se, float(2 * t.sf(abs(diff) / se, dof))


def _paired(a: Dict[int, float], b: Dict[int, float]) -> tuple:
    """``(seeds where a scored higher, seeds both have, two-sided p of the paired t-test)`` over
    the seeds both arms ran; ``nan`` p under two shared seeds. The runs of a seed share the
    data order (and, within one network, the initialisation), so pairing removes that part
    of the seeds' spread."""
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    higher = sum(d > TIE for d in diffs)
    if len(diffs) < 2:
        return higher, len(diffs), math.nan
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    if sd == 0:
        return higher, len(diffs), 1.0 if abs(mean) <= TIE else 0.0
    from scipy.stats import t
    return higher, len(diffs), float(2 * t.sf(abs(mean) / (sd / math.sqrt(len(diffs))),
                                              len(diffs) - 1))


# Means closer than this are equal: metrics arrive as float32 (about 1e-5 apart at 100).
TIE = 1e-4


def summarise(study: Config, results: List[dict]) -> List[dict]:
    """One row per (arm, learning rate): n, failed, mean and std of the study's metric over
    seeds, the difference to its reference arm (the arm's own ``reference``, else the study's;
    at its best learning rate) with its standard error and Welch's p, over the seeds both ran:
    in how many the arm scored higher and the paired t-test's p, the arm's active GFLOPs
    and median wall time of its runs, and whether it is the arm's best learning rate on this
    split: the highest mean, a tie (within :data:`TIE`) going to the lower std over seeds."""
    key = f'{study.split}/{study.metric}'
    groups: Dict[tuple, List[dict]] = {}
    for r in results:
        groups.setdefault((r['arm'], r['lr']), []).append(r)
    rows = []
    for (arm, lr), runs in groups.items():
        ok = [r for r in runs if r['status'] == 'ok' and key in r['metrics']]
        values = [r['metrics'][key] for r in ok]
        rows.append(dict(
            arm=arm, lr=lr, n=len(values), failed=len(runs) - len(ok), values=values,
            by_seed={r['seed']: r['metrics'][key] for r in ok},
            mean=statistics.fmean(values) if values else math.nan,
            std=statistics.stdev(values) if len(values) > 1 else math.nan,
            gflops=_median([r.get('gflops') for r in ok]),
            train_s=_median([r.get('train_s') for r in ok])))
    for arm in study.arms:
        mine = [r for r in rows if r['arm'] == arm and r['n']]
        if mine:
            top = max(r['mean'] for r in mine)
            tied = [r for r in mine if top - r['mean'] <= TIE]
            min(tied, key=lambda r: r['std'] if r['n'] > 1 else math.inf)['best'] = True
    best = {r['arm']: r for r in rows if r.get('best')}
    for row in rows:
        row.setdefault('best', False)
        row['reference'] = study.arms[row['arm']].get('reference', study.reference)
        ref = best.get(row['reference'])
        if ref is None or not row['n'] or ref is row:
            row.update(diff=math.nan, se=math.nan, p=math.nan, higher=math.nan,
                       shared=math.nan, p_paired=math.nan)
        else:
            row['diff'], row['se'], row['p'] = _welch(row['values'], ref['values'])
            row['higher'], row['shared'], row['p_paired'] = _paired(row['by_seed'],
                                                                    ref['by_seed'])
    return rows


def _median(values: Sequence[Optional[float]]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else math.nan


def _fmt(value: float, digits: int = 2) -> str:
    return '-' if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f'{value:.{digits}f}'


def _fmt_p(p: float) -> str:
    return '< 0.001' if p < 0.001 else _fmt(p, 3)


def format_table(study: Config, rows: List[dict]) -> str:
    """The summary as a markdown table; a difference whose Welch p is above 0.05 is marked
    "within noise". The seeds column counts those where the arm scored above its reference,
    of the seeds both ran, beside the paired t-test's p over them."""
    with_lr = any(r['lr'] is not None for r in rows)
    own_refs = any(r['reference'] != study.reference for r in rows)
    # Metrics on a 0-1 scale (mAP) need a third decimal; percentages (top-1, mIoU) do not.
    digits = 3 if all(abs(r['mean']) <= 1 for r in rows if r['n']) else 2
    head = ['arm'] + (['lr'] if with_lr else []) + \
        [f'{study.split} {study.metric}: mean ± std', 'n',
         'vs its reference' if own_refs else f'vs {study.reference}',
         'p', 'higher in (seeds)', 'paired p', 'active GFLOPs', 'train s (median)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        name = f"**{r['arm']}**" if r['arm'] == r['reference'] and r['best'] else r['arm']
        lr = ([('-' if r['lr'] is None else f"{r['lr']:g}") + (' (best)' if r['best'] else '')]
              if with_lr else [])
        n = f"{r['n']}" + (f" ({r['failed']} failed)" if r['failed'] else '')
        if r['arm'] == r['reference'] and r['best']:
            diff, p, higher, paired = '', '', '', ''
        elif math.isnan(r['diff']):
            diff, p, higher, paired = '-', '-', '-', '-'
        else:
            higher = f"{r['higher']} of {r['shared']}"
            paired = _fmt_p(r['p_paired'])
            diff = f"{r['diff']:+.{digits}f} ± {_fmt(r['se'], digits)}" + \
                (f" (vs {r['reference']})" if own_refs else '')
            p = _fmt_p(r['p']) + (' (within noise)' if r['p'] > 0.05 else '')
        spread = f"{_fmt(r['mean'], digits)} ± {_fmt(r['std'], digits)}"
        lines.append('| ' + ' | '.join(
            [name] + lr + [spread, n, diff, p, higher, paired, _fmt(r['gflops'], 3),
                           _fmt(r['train_s'], 0)]) + ' |')
    return '\n'.join(lines)

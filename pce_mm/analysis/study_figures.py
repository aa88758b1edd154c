"""Figures of a study's summary (matplotlib, written as PNG): every seed and mean ± std per
arm, the metric against what each arm costs, and a study's curve."""
import math
from typing import Dict, List, Tuple

import matplotlib

matplotlib.use('Agg')  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ['draw_seeds', 'draw_cost', 'draw_curve']


def _label(row: dict) -> str:
    return row['arm'] if row['lr'] is None else f"{row['arm']}\nlr {row['lr']:g}"


def draw_seeds(rows: List[dict], metric: str, path: str, reference: str) -> None:
    """Per arm (and learning rate): a dot per seed, the mean with a ±std bar, and the
    reference arm's best mean as a dashed line."""
    rows = [r for r in rows if r['n']]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 1.5), 4.0))
    for i, row in enumerate(rows):
        ax.scatter([i] * row['n'], row['values'], s=14, color='0.55', zorder=2)
        std = 0.0 if math.isnan(row['std']) else row['std']
        ax.errorbar(i + 0.18, row['mean'], yerr=std, fmt='o', color='C0' if row['best']
                    else 'C7', capsize=4, zorder=3)
        if row['arm'] == reference and row['best']:
            ax.axhline(row['mean'], color='C3', ls='--', lw=1, zorder=1,
                       label=f'{reference} mean')
    ax.set_xticks(range(len(rows)), [_label(r) for r in rows], rotation=35, ha='right',
                  fontsize=8)
    ax.set_ylabel(metric)
    ax.grid(axis='y', alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_cost(rows: List[dict], metric: str, path: str) -> None:
    """The metric (mean ± std) of every arm's best learning rate against the median wall
    time of its training runs, and against its active GFLOPs per image."""
    rows = [r for r in rows if r['n'] and r['best']]
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.0), sharey=True)
    for ax, key, name in ((axes[0], 'train_s', 'training wall time, s (median over seeds)'),
                          (axes[1], 'gflops', 'active GFLOPs per image (backbone)')):
        for i, row in enumerate(rows):
            if math.isnan(row[key]):
                continue
            std = 0.0 if math.isnan(row['std']) else row['std']
            ax.errorbar(row[key], row['mean'], yerr=std, fmt='o', color=f'C{i % 10}',
                        capsize=3)
            ax.annotate(row['arm'], (row[key], row['mean']), fontsize=7,
                        xytext=(4, 3), textcoords='offset points')
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_curve(series: Dict[str, List[Tuple[float, dict]]], x_label: str, metric: str,
               path: str) -> None:
    """Per series, the metric (mean ± std over seeds) of its arms against their x, on a
    log x axis (x is a size: training samples, experts)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for i, (name, points) in enumerate(series.items()):
        points = sorted(((x, row) for x, row in points if row is not None and row['n']),
                        key=lambda p: p[0])
        if not points:
            continue
        dodge = 1 + 0.015 * (i - (len(series) - 1) / 2)   # keeps error bars apart
        ax.errorbar([x * dodge for x, _ in points], [r['mean'] for _, r in points],
                    yerr=[0.0 if math.isnan(r['std']) else r['std'] for _, r in points],
                    fmt='o-', color=f'C{i % 10}', capsize=3, label=name)
    ax.set_xscale('log')
    xs = sorted({x for points in series.values() for x, _ in points})
    ax.set_xticks(xs, [f'{x:g}' for x in xs])
    ax.minorticks_off()
    ax.set_xlabel(x_label)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""Median times of steps on a machine whose speed drifts: the contenders are timed in turns.

This machine's speed drifted by up to 30% within minutes; timing one contender after the
other showed that drift as false differences (docs/performance.md, "The benchmark tool").
"""
import statistics
import time
from typing import Callable, Dict

import torch

__all__ = ['sync', 'interleaved_medians', 'Timer']


def sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def interleaved_medians(steps: Dict[str, Callable], device: str, warmup: int,
                        repeats: int) -> Dict[str, float]:
    """Median seconds of each step, timed in turns (one run of each per round) after
    ``warmup`` runs of each, so that a machine getting faster or slower during the run
    shifts all of them alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


class Timer:
    """:func:`interleaved_medians` with its settings: what the benchmark's sections take to
    time their steps (a test may hand them another measure with the same call)."""

    def __init__(self, device: str = 'cpu', warmup: int = 2, repeats: int = 5):
        self.device, self.warmup, self.repeats = device, warmup, repeats

    def __call__(self, steps: Dict[str, Callable]) -> Dict[str, float]:
        return interleaved_medians(steps, self.device, self.warmup, self.repeats)

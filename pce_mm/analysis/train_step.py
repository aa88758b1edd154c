"""One training step of a backbone (forward, backward, SGD) and what it costs besides time:
the memory it needs, the host reads it makes, its FLOPs and parameters.

The benchmark compares each PCENet preset with its ResNet twin at matched active FLOPs
(:data:`PAIRS`); the timing scripts in benchmarks/ build on the same steps.
"""
import contextlib
import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .flops import flop_analyzer
from .host_reads import HostReads
from .saved_tensors import SavedForBackward

__all__ = ['PAIRS', 'select_pairs', 'build_backbone', 'pce_spec', 'train_step', 'host_reads',
           'training_memory_mib', 'step_memory', 'flops_and_params']

# (PCENet preset, its ResNet twin, input side, batch)
PAIRS = [('tiny', dict(type='ResNet_CIFAR', depth=18), 32, 32),
         ('r18', dict(type='ResNet', depth=18), 224, 8),
         ('r50', dict(type='ResNet', depth=50), 224, 4)]


def select_pairs(archs: Optional[Sequence[str]] = None, quick: bool = False) -> List[tuple]:
    """:data:`PAIRS` of the presets ``archs`` (all by default), with sides of at most 32
    pixels and batches of 2 under ``quick``."""
    unknown = set(archs or ()) - {arch for arch, *_ in PAIRS}
    if unknown:
        raise ValueError(f'no benchmark pair for preset(s) {sorted(unknown)}; '
                         f'the pairs are {[arch for arch, *_ in PAIRS]}')
    return [(arch, resnet, *((min(side, 32), 2) if quick else (side, batch)))
            for arch, resnet, side, batch in PAIRS if archs is None or arch in archs]


def build_backbone(spec: dict) -> nn.Module:
    import pce_mm  # noqa: F401  (registration)
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    # mmpretrain's scope whatever the caller's is: inside mmseg's, ResNet_CIFAR is unknown.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(spec)


def pce_spec(arch: str, **settings) -> dict:
    """The benchmark's PCENet: ``arch`` with E = 8 experts, k = 2 (and ``settings``)."""
    return dict(type='PCENet', arch=arch, num_experts=8, top_k=2, **settings)


@contextlib.contextmanager
def _quiet_log():
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def train_step(spec: dict, side: int, batch: int, device: str, phase: Optional[int] = None,
               switch: bool = True) -> Tuple[Callable, nn.Module, torch.Tensor]:
    """``(step, model, x)``: one training step of a backbone (forward, backward, SGD) on a
    fixed random batch; a PCENet in ``phase`` (1 or 2) when given.

    Phase 2 is reached as training reaches it (``switch``): a step in phase 1, then the
    switch (experts tied, routers set by k-means of the batch's patches, balanced) and two
    routed steps. A fresh router forced into phase 2 has near-zero logits, and on a batch
    repeated step after step loss-free balancing's bias then outweighs them: every patch
    of a block goes to the same two experts, a routing no trained model has, and cheaper
    to run than a balanced one (docs/performance.md, "The benchmark tool").
    ``switch=False`` skips it (the benchmark's ``--quick``: its k-means needs a patch per
    expert in every block).
    """
    torch.manual_seed(0)
    model = build_backbone(spec).to(device)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, side, side, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        sum(o.float().mean() for o in model(x)).backward()
        opt.step()

    switch = switch and phase == 2
    if switch:
        model.set_phase(1)
        step()
    if phase is not None:
        model.set_phase(phase)
    with _quiet_log():                              # the switch's report
        step()                                      # creates grads and optimizer state
    if switch:
        step()                                      # loss-free balancing settles
    return step, model, x


def host_reads(step: Callable) -> int:
    """Host reads of tensor values in one step: each is a synchronisation on a GPU."""
    with HostReads() as reads:
        step()
    return reads.total


def training_memory_mib(model: nn.Module, x: torch.Tensor) -> float:
    """Memory a training step needs, counted tensor by tensor (the CPU allocator has no
    peak statistic, and the process's resident set mostly shows what glibc kept): the
    storages autograd saves for backward during the forward pass, plus parameters, their
    gradients and SGD momentum (3x the parameters)."""
    params = frozenset(p.untyped_storage().data_ptr() for p in model.parameters())
    with SavedForBackward(exclude=params) as saved:
        loss = sum(o.float().mean() for o in model(x))
    loss.backward()
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return saved.mib + 3 * param_bytes / 2**20


def step_memory(step: Callable, model: nn.Module, x: torch.Tensor, device: str) -> float:
    """MiB a training step needs: the allocator's peak on a GPU, counted tensors on a CPU
    (:func:`training_memory_mib`)."""
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    model.zero_grad(set_to_none=True)
    return training_memory_mib(model, x)


def flops_and_params(model: nn.Module, side: int, device: str) -> Dict[str, float]:
    """GFLOPs of one ``side``-pixel image in eval mode (a fresh PCENet routes: its top-k
    experts on their patches), those of its context modules, and millions of parameters."""
    model = model.to(device)
    model.eval()                 # mmpretrain's ResNet.train() returns None: no chaining
    analyzer = flop_analyzer(model, torch.randn(1, 3, side, side, device=device))
    context = sum(v for k, v in analyzer.by_module().items() if k.endswith('.context'))
    return dict(gflops=analyzer.total() / 1e9, context_gflops=context / 1e9,
                params_m=sum(p.numel() for p in model.parameters()) / 1e6)

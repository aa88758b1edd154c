"""Fixes that make the pinned stack work together (DESIGN.md, "Set-up").

Imported first by ``pce_mm/__init__.py``. Each fix names the problem it solves, changes
nothing when that problem is absent, and is tested in ``tests/test_compat.py``.
Installed packages are never edited.
"""
import sys

import torch

__all__ = ['apply_all']


def define_torchvision_op_schemas() -> None:
    """Lets the CUDA-only torchvision wheel import on a CPU torch.

    mmpretrain imports torchvision at module level; the only torchvision 0.28 on the registry
    is a CUDA build whose compiled ops cannot load here, and its ``_meta_registrations``
    then fails with ``operator torchvision::nms does not exist``. Declaring the two schemas it
    decorates lets its pure-Python parts import; nothing in this stack calls those ops.
    """
    if 'torchvision' in sys.modules or _has_op('torchvision', 'nms'):
        return
    lib = torch.library.Library('torchvision', 'DEF')  # noqa: TOR901
    lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    lib.define('qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    # A Library deregisters its definitions when garbage collected: keep it alive.
    define_torchvision_op_schemas.library = lib


def _has_op(namespace: str, name: str) -> bool:
    try:
        getattr(getattr(torch.ops, namespace), name)
    except (AttributeError, RuntimeError):
        return False
    return True


def load_local_checkpoints_safely() -> None:
    """Makes ``--resume`` and ``load_from`` work on torch >= 2.6, without trusting pickles.

    torch 2.6 turned ``torch.load`` to ``weights_only=True``; mmengine 0.10.7's checkpoints
    hold ``HistoryBuffer`` objects and numpy arrays in ``message_hub``, so loading them
    fails (mmengine issue 1655). Local files are loaded with ``weights_only=True`` and an
    allow-list of exactly those objects (:mod:`pce_mm.checkpoint`).
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    from .checkpoint import load_local
    CheckpointLoader.register_scheme(prefixes='', loader=load_local, force=True)


def cpu_set_device_is_noop() -> None:
    """Lets ``torchrun`` start mmengine on a CPU-only torch.

    mmengine's ``_init_dist_pytorch`` calls ``torch.cuda.set_device(local_rank)`` whatever
    the backend; without CUDA that raises. With no GPU there is no device to pick.
    """
    if torch.cuda.is_available():
        return
    torch.cuda.set_device = lambda device: None


def apply_all() -> None:
    define_torchvision_op_schemas()
    load_local_checkpoints_safely()
    cpu_set_device_is_noop()

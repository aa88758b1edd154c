"""The PCE training recipe through a real Runner (pce_mnist.py on tiny idx files): the phase
switch, after a resume too, the router losses and statistics in the text log and the
visualizer backends, and the loss-scale hook."""
import glob
import json
import math
import os.path as osp
import re

import pytest
import torch
from helpers import NARROW_OPTIONS, build_runner, load_config, narrow_pce_mnist
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from pce_mm.datasets.synthetic import write_mnist


@pytest.fixture(scope='module')
def mnist_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('mnist'))
    write_mnist(root, num_train=8, num_test=4)
    return root


def mnist_cfg(root: str, **options):
    """pce_mnist.py (narrow PCENet), batch 2: four iterations an epoch, a log line each."""
    return load_config('pce_mnist', {
        **NARROW_OPTIONS,
        'data_root': root, 'train_dataloader.batch_size': 2, 'val_dataloader.batch_size': 4,
        'test_dataloader.batch_size': 4, 'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1, 'train_cfg.val_interval': 10, **options})


def train_log(runner) -> str:
    runner.train()
    return open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()


def iteration_lines(log: str) -> list:
    return re.findall(r'Epoch\(train\) +\[\d+\]\[\d+/\d+\].*', log)


def test_phase_switches_at_warmup_iters_and_router_entries_reach_log_and_tensorboard(
        mnist_root, tmp_path):
    cfg = mnist_cfg(mnist_root, **{'model.backbone.warmup_iters': 2,
                                   'train_cfg.max_epochs': 1})
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend'),
                                   dict(type='TensorboardVisBackend')]
    runner = build_runner(cfg, str(tmp_path))
    log = train_log(runner)
    assert 'phase 1 (expert warm-up: no router, no attention) at epoch 1, iteration 1' in log
    assert log.count('phase 2 (router and deformable attention on) from epoch 1, '
                     'iteration 3') == 1
    assert log.count('PCENet: switched to routing at epoch 1, iteration 3: experts tied to '
                     'the warm-up expert; routers set by k-means') == 1
    lines = iteration_lines(log)
    assert len(lines) == 4
    assert not any('router' in line for line in lines[:2])
    for line in lines[2:]:
        for key in ('loss_router_entropy', 'loss_router_balance', 'router_s2_entropy',
                    'router_s4_imbalance', 'router_s1_load_e7', 'loss'):
            assert f'{key}: ' in line, (key, line)
    assert 'loss_router_z' not in log                       # its weight is 0 by default
    vis_data = osp.join(runner.log_dir, 'vis_data')
    scalars = [json.loads(line) for line in open(osp.join(vis_data, 'scalars.json'))]
    train = [s for s in scalars if 'loss' in s]
    assert 'router_s3_entropy' in train[-1] and 'router_s3_entropy' not in train[0]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(glob.glob(osp.join(vis_data, '**', '*tfevents*'),
                                        recursive=True)[0])
    events.Reload()
    assert 'router_s3_entropy' in events.Tags()['scalars']


def test_phase_follows_epochs_and_a_resume_lands_in_the_right_phase(mnist_root, tmp_path):
    options = {'model.backbone.warmup_epochs': 1}
    runner = build_runner(mnist_cfg(mnist_root, **options, **{'train_cfg.max_epochs': 1}),
                          str(tmp_path / 'first'))
    first = train_log(runner)
    assert 'phase 1' in first and 'phase 2' not in first
    checkpoint = osp.join(str(tmp_path / 'first'), 'epoch_1.pth')

    # Resumed after epoch 1: epoch 2 is phase 2 from its first iteration.
    cfg = mnist_cfg(mnist_root, **options, **{'train_cfg.max_epochs': 2})
    cfg.resume, cfg.load_from = True, checkpoint
    resumed = train_log(build_runner(cfg, str(tmp_path / 'resumed')))
    assert 'phase 1' not in resumed
    assert 'phase 2 (router and deformable attention on) from epoch 2, iteration 5' in resumed
    assert resumed.count('switched to routing at epoch 2, iteration 5') == 1

    # With two warm-up epochs the same checkpoint resumes inside phase 1.
    cfg = mnist_cfg(mnist_root, **{'model.backbone.warmup_epochs': 2,
                                   'train_cfg.max_epochs': 2})
    cfg.resume, cfg.load_from = True, checkpoint
    still_warm = train_log(build_runner(cfg, str(tmp_path / 'still_warm')))
    assert 'phase 1 (expert warm-up: no router, no attention) at epoch 2, iteration 5' \
        in still_warm and 'phase 2' not in still_warm


def test_warmup_covering_the_whole_run_is_reported(mnist_root, tmp_path):
    log = train_log(build_runner(mnist_cfg(mnist_root, **{'train_cfg.max_epochs': 1}),
                                 str(tmp_path)))
    assert 'phase 1 (warmup_epochs=2) covers the whole run' in log


class CPUGradScalerOptimWrapper(OptimWrapper):
    """AmpOptimWrapper's fp16 recipe (autocast + GradScaler) on CPU, where mmengine's own
    wrapper refuses to build."""

    def __init__(self, init_scale: float, **kwargs):
        super().__init__(**kwargs)
        self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=init_scale,
                                                growth_interval=10**6)

    def backward(self, loss, **kwargs):
        self.loss_scaler.scale(loss).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs):
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()

    def optim_context(self, model):
        from contextlib import ExitStack
        stack = ExitStack()
        stack.enter_context(super().optim_context(model))
        stack.enter_context(torch.autocast('cpu', dtype=torch.float16))
        return stack


@pytest.fixture
def cpu_grad_scaler():
    """Registers the wrapper for one test only (mmengine has no public unregister)."""
    OPTIM_WRAPPERS.register_module(module=CPUGradScalerOptimWrapper)
    yield
    OPTIM_WRAPPERS._module_dict.pop(CPUGradScalerOptimWrapper.__name__)


@pytest.mark.parametrize('wrapper, factor', [
    (dict(accumulative_counts=2), 0.5),
    (dict(type='CPUGradScalerOptimWrapper', init_scale=512.0), 512.0),
    (dict(type='BF16OptimWrapper'), 1.0),
])
def test_loss_scale_hook_gives_the_router_losses_the_task_loss_factor(
        wrapper, factor, mnist_root, tmp_path, cpu_grad_scaler):
    cfg = mnist_cfg(mnist_root, **{'model.backbone.warmup_epochs': 0,
                                   'train_cfg.max_epochs': 1})
    cfg.optim_wrapper.update(wrapper)
    runner = build_runner(cfg, str(tmp_path))
    log = train_log(runner)
    assert runner.model.backbone.aux_loss_scale == factor
    lines = iteration_lines(log)
    losses = [float(v) for line in lines for v in re.findall(r' loss\w*: ([-\w.]+)', line)]
    assert lines and all('loss_router_entropy' in line for line in lines)
    assert all(math.isfinite(v) for v in losses)


def test_ramp_rises_over_ramp_iters_after_the_switch_and_is_one_outside_a_runner():
    from mmengine.logging import MessageHub

    from pce_mm.models.phase import TwoPhaseSchedule
    assert TwoPhaseSchedule(warmup_epochs=2, ramp_iters=10).ramp() == 1.0   # no Runner
    hub = MessageHub.get_instance('ramp_test')
    try:
        hub.update_info_dict(dict(loop_stage='train', max_epochs=4, max_iters=40))
        by_epochs = TwoPhaseSchedule(warmup_epochs=2, ramp_iters=10)   # switch at iter 20
        by_iters = TwoPhaseSchedule(warmup_epochs=2, warmup_iters=5, ramp_iters=4)
        ramps = []
        for it in (19, 20, 24, 29, 35):
            hub.update_info_dict(dict(iter=it, epoch=it // 10))
            ramps.append((by_epochs.ramp(), by_iters.ramp()))
        assert ramps == [(0.0, 1.0), (0.1, 1.0), (0.5, 1.0), (1.0, 1.0), (1.0, 1.0)]
        hub.update_info_dict(dict(iter=6, epoch=0))
        assert by_iters.ramp() == 0.5                                   # iterations 6, 7 of 4
        by_iters.force(2)
        assert by_iters.ramp() == 1.0
    finally:
        MessageHub.get_instance('after_ramp_test')   # a clean current hub for later tests


def test_ramp_mixes_phase_one_and_routed_expert_outputs():
    from pce_mm.models import PCEBlock
    block = PCEBlock(16, 8, num_experts=4, top_k=2, patch_size=4).eval()
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        warm, routed, half = block(x, True), block(x, False, 1.0), block(x, False, 0.5)
    assert not torch.allclose(warm, routed)
    # The mix is taken before the combine's 1x1 conv and BN (linear in eval) and the ReLU:
    # where all three are positive, half lies midway.
    both = (warm > 0) & (routed > 0) & (half > 0)
    torch.testing.assert_close(half[both], ((warm + routed) / 2)[both], rtol=1e-4, atol=1e-5)


def test_test_tool_runs_a_checkpoint_in_its_last_phase_or_the_one_asked_for(
        mnist_root, tmp_path):
    import subprocess
    import sys

    from helpers import REPO
    options = [f'data_root={mnist_root}', 'train_dataloader.batch_size=2',
               'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
               'test_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
               'val_dataloader.persistent_workers=False',
               'test_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1']
    work = str(tmp_path)
    config = narrow_pce_mnist(str(tmp_path / 'pce_mnist_narrow.py'))
    build_runner(mnist_cfg(mnist_root, **{'train_cfg.max_epochs': 1}), work).train()
    # one epoch (four iterations), all in phase 1: epoch_1.pth
    outputs = {}
    for phase in ([], ['--phase', '1'], ['--phase', '2']):
        run = subprocess.run([sys.executable, 'tools/test.py', config,
                              osp.join(work, 'epoch_1.pth'), '--work-dir', work] + phase
                             + ['--cfg-options'] + options, cwd=REPO, capture_output=True,
                             text=True)
        assert run.returncode == 0, run.stderr[-3000:]
        outputs[' '.join(phase)] = run.stdout + run.stderr
    for out in outputs.values():
        assert 'accuracy/top1' in out
    assert 'switched to routing' not in outputs[''] + outputs['--phase 1']
    assert outputs['--phase 2'].count('PCENet: switched to routing: experts tied') == 1

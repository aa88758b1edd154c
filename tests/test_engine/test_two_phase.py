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
    cfg = mnist_cfg(mnist_root, **{'model.backbone.phase_cfg.warmup_iters': 2,
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
                    'router_s4_imbalance', 'loss'):
            assert f'{key}: ' in line, (key, line)
        # The experts' loads (8 a stage) stay out of the text log: a line stays readable.
        assert '_load_e' not in line and len(line) < 400, line
    assert 'loss_router_z' not in log                       # its weight is 0 by default
    vis_data = osp.join(runner.log_dir, 'vis_data')
    scalars = [json.loads(line) for line in open(osp.join(vis_data, 'scalars.json'))]
    train = [s for s in scalars if 'loss' in s]
    assert 'router_s3_entropy' in train[-1] and 'router_s3_entropy' not in train[0]
    # ExpertLoadHook: every stage's loads, at iterations 3 and 4, summing to 1 a stage.
    loads = [s for s in scalars if 'router_s1_load_e0' in s]
    assert [s['step'] for s in loads] == [3, 4]
    for stage in range(1, 5):
        total = sum(loads[-1][f'router_s{stage}_load_e{i}'] for i in range(8))
        assert total == pytest.approx(1.0)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(glob.glob(osp.join(vis_data, '**', '*tfevents*'),
                                        recursive=True)[0])
    events.Reload()
    assert {'router_s3_entropy', 'router_s4_load_e7'} <= set(events.Tags()['scalars'])


def test_expert_loads_are_not_recorded_when_switched_off(mnist_root, tmp_path):
    cfg = mnist_cfg(mnist_root, **{'model.backbone.phase_cfg.warmup_iters': 2,
                                   'model.backbone.loss_cfg.log_expert_load': False,
                                   'train_cfg.max_epochs': 1})
    runner = build_runner(cfg, str(tmp_path))
    log = train_log(runner)
    assert 'router_s2_entropy' in iteration_lines(log)[-1]
    scalars = open(osp.join(runner.log_dir, 'vis_data', 'scalars.json')).read()
    assert 'router_s2_entropy' in scalars and '_load_e' not in scalars


def test_phase_follows_epochs_and_a_resume_lands_in_the_right_phase(mnist_root, tmp_path):
    options = {'model.backbone.phase_cfg.warmup_epochs': 1}
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
    cfg = mnist_cfg(mnist_root, **{'model.backbone.phase_cfg.warmup_epochs': 2,
                                   'train_cfg.max_epochs': 2})
    cfg.resume, cfg.load_from = True, checkpoint
    still_warm = train_log(build_runner(cfg, str(tmp_path / 'still_warm')))
    assert 'phase 1 (expert warm-up: no router, no attention) at epoch 2, iteration 5' \
        in still_warm and 'phase 2' not in still_warm


def test_warmup_covering_the_whole_run_is_reported(mnist_root, tmp_path):
    log = train_log(build_runner(mnist_cfg(mnist_root, **{'train_cfg.max_epochs': 1}),
                                 str(tmp_path)))
    assert 'phase 1 (phase_cfg.warmup_epochs=2) covers the whole run' in log


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
    cfg = mnist_cfg(mnist_root, **{'model.backbone.phase_cfg.warmup_epochs': 0,
                                   'train_cfg.max_epochs': 1})
    cfg.optim_wrapper.update(wrapper)
    runner = build_runner(cfg, str(tmp_path))
    log = train_log(runner)
    assert runner.model.backbone.aux_loss_scale == factor
    lines = iteration_lines(log)
    losses = [float(v) for line in lines for v in re.findall(r' loss\w*: ([-\w.]+)', line)]
    assert lines and all('loss_router_entropy' in line for line in lines)
    assert all(math.isfinite(v) for v in losses)


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

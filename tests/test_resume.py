"""A training process killed by a signal and resumed with --resume continues in the right
phase, from the same optimizer, scheduler and data position, and runs the switch exactly
once: on CPU with a fixed seed, its losses and final weights equal those of an unbroken run.

The process kills itself (a hook, after the checkpoint of a chosen iteration is written), so
where it stops does not depend on how fast it runs."""
import glob
import os
import os.path as osp
import re
import signal
import subprocess
import sys

import pytest
import torch
from helpers import REPO, narrow_pce_mnist

from pce_mm.datasets.synthetic import write_mnist

MAX_ITERS, WARMUP_ITERS = 16, 6

KILL_HOOK = '''
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAfterCheckpoint(Hook):
    """SIGKILLs its own process at the end of training iteration ``iteration`` (1-based),
    after CheckpointHook (priority VERY_LOW) has written that iteration's checkpoint."""
    priority = 'LOWEST'

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    write_mnist(str(root / 'mnist'), num_train=16, num_test=4)
    (root / 'kill_hook.py').write_text(KILL_HOOK)
    config = narrow_pce_mnist(str(root / 'pce_mnist_iters.py'), f'''
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='{root}/mnist'),
                        sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root='{root}/mnist'))
test_dataloader = val_dataloader
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={MAX_ITERS},
                 val_interval=1000)
param_scheduler = dict(_delete_=True, type='MultiStepLR', by_epoch=False, milestones=[10],
                       gamma=0.1)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(by_epoch=False, interval=2, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True)
''', phase_cfg=dict(warmup_iters=WARMUP_ITERS))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1',
               PYTHONPATH=f'{root}:{os.environ.get("PYTHONPATH", "")}')
    return config, env


def kill_config(config: str, iteration: int) -> str:
    """``config`` with :class:`KillAfterCheckpoint` at ``iteration`` among its hooks."""
    path = osp.join(osp.dirname(config), f'kill_after_{iteration}.py')
    with open(path, 'w') as f:
        f.write(f"_base_ = '{config}'\n"
                "custom_imports = dict(imports=['pce_mm', 'kill_hook'], "
                "allow_failed_imports=False)\n"
                "custom_hooks = [dict(type='RouterLossScaleHook'), dict(type='ExpertLoadHook'), "
                f"dict(type='KillAfterCheckpoint', iteration={iteration})]\n")
    return path


def last_checkpoint_iter(work_dir: str) -> int:
    """The iteration of the checkpoint mmengine's `last_checkpoint` names, 0 if none."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            return int(re.search(r'iter_(\d+)\.pth', f.read()).group(1))
    except (FileNotFoundError, AttributeError):
        return 0


def train(config: str, work_dir: str, env: dict, resume: bool = False,
          killed: bool = False) -> str:
    args = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir]
    if resume:
        args.append('--resume')
    run = subprocess.run(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=600)
    if killed:
        assert run.returncode == -signal.SIGKILL, run.stdout[-3000:]
    else:
        assert run.returncode == 0, run.stdout[-3000:]
    return run.stdout


def losses(log: str) -> dict:
    return {int(i): loss for i, loss in
            re.findall(rf'Iter\(train\) \[\s*(\d+)/{MAX_ITERS}\].*? loss: ([-\d.]+)', log)}


@pytest.fixture(scope='module')
def unbroken(setup, tmp_path_factory):
    config, env = setup
    work = str(tmp_path_factory.mktemp('unbroken'))
    log = train(config, work, env)
    assert log.count(f'switched to routing at epoch 1, iteration {WARMUP_ITERS + 1}') == 1
    assert sorted(losses(log)) == list(range(1, MAX_ITERS + 1))
    return losses(log), torch.load(osp.join(work, f'iter_{MAX_ITERS}.pth'),
                                   weights_only=False)['state_dict']


@pytest.mark.parametrize('kill_after, resumed_phase', [
    (WARMUP_ITERS - 2, 'phase 1 (expert warm-up'),      # inside the warm-up
    (WARMUP_ITERS, 'phase 2 (router and deformable'),   # the next iteration switches
    (WARMUP_ITERS + 2, 'phase 2 (router and deformable'),  # after the switch
])
def test_killed_run_resumes_in_phase_and_matches_the_unbroken_run(
        setup, unbroken, tmp_path, kill_after, resumed_phase):
    config, env = setup
    want_losses, want_weights = unbroken
    work = str(tmp_path)
    killed = train(kill_config(config, kill_after), work, env, killed=True)
    assert last_checkpoint_iter(work) == kill_after
    assert sorted(losses(killed)) == list(range(1, kill_after + 1))
    resumed = train(config, work, env, resume=True)
    assert re.search(rf'resumed epoch: \d+, iter: {kill_after}\b', resumed)
    assert re.search(rf'{re.escape(resumed_phase)}.*iteration {kill_after + 1}\b', resumed)
    # The switch's one-time actions run in the resumed run only if it was killed before them.
    switched = resumed.count(f'switched to routing at epoch 1, iteration {WARMUP_ITERS + 1}')
    assert switched == (kill_after <= WARMUP_ITERS)
    assert resumed.count('switched to routing') == switched
    got = losses(resumed)
    assert sorted(got) == list(range(kill_after + 1, MAX_ITERS + 1))
    assert {i: want_losses[i] for i in got} == got
    weights = torch.load(osp.join(work, f'iter_{MAX_ITERS}.pth'),
                         weights_only=False)['state_dict']
    assert weights.keys() == want_weights.keys()
    for name, value in want_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=0, atol=0, msg=name)
    assert len(glob.glob(osp.join(work, '*', '*.log'))) == 2    # the killed run's and this

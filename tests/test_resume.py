"""A training process killed by a signal and resumed with --resume continues in the right
phase, from the same optimizer, scheduler, data position and router init points (phase 1's
last batches, kept for the switch): on CPU with a fixed seed, its losses and final weights
equal those of an unbroken run."""
import glob
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import REPO, narrow_pce_mnist

from pce_mm.datasets.synthetic import write_mnist

MAX_ITERS, WARMUP_ITERS, INIT_BATCHES = 16, 6, 4


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    write_mnist(str(root / 'mnist'), num_train=16, num_test=4)
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
                     checkpoint=dict(by_epoch=False, interval=2, max_keep_ckpts=-1))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True)
''', warmup_iters=WARMUP_ITERS, switch_cfg=dict(init_batches=INIT_BATCHES))
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return config, env


def last_checkpoint_iter(work_dir: str) -> int:
    """The iteration of the checkpoint mmengine's `last_checkpoint` names (written after the
    checkpoint itself is complete), 0 if none yet."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            return int(re.search(r'iter_(\d+)\.pth', f.read()).group(1))
    except (FileNotFoundError, AttributeError):
        return 0


def train(config: str, work_dir: str, env: dict, resume: bool = False,
          kill_after: int = None) -> str:
    args = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir]
    if resume:
        args.append('--resume')
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if kill_after is not None:
        deadline = time.time() + 300
        while last_checkpoint_iter(work_dir) < kill_after and proc.poll() is None:
            assert time.time() < deadline, f'no checkpoint of iteration {kill_after}'
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    if kill_after is None:
        assert proc.returncode == 0, out[-3000:]
    else:
        assert proc.returncode == -signal.SIGKILL, 'the process ended before it was killed'
    return out


def losses(log: str) -> dict:
    return {int(i): loss for i, loss in
            re.findall(rf'Iter\(train\) \[\s*(\d+)/{MAX_ITERS}\].*? loss: ([-\d.]+)', log)}


@pytest.fixture(scope='module')
def unbroken(setup, tmp_path_factory):
    config, env = setup
    work = str(tmp_path_factory.mktemp('unbroken'))
    log = train(config, work, env)
    assert log.count('switched to routing at epoch 1, iteration 7') == 1
    # The routers keep the points of iterations 4-6 (the switch's batch, iteration 7, is the
    # fourth) in the checkpoints, and drop them at the switch.
    points = {it: torch.load(osp.join(work, f'iter_{it}.pth'), weights_only=False)[
        'state_dict']['backbone.layer2.1.router._extra_state'].shape[0] for it in (2, 4, 6, 8)}
    per_batch = points[4]
    assert per_batch > 0 and points == {2: 0, 4: per_batch, 6: 3 * per_batch, 8: 0}
    return losses(log), torch.load(osp.join(work, f'iter_{MAX_ITERS}.pth'),
                                   weights_only=False)['state_dict']


@pytest.mark.parametrize('kill_after, resumed_phase', [
    (4, 'phase 1 (expert warm-up'),      # killed inside the warm-up, with router points
    (WARMUP_ITERS + 2, 'phase 2 (router and deformable'),  # just after the switch
])
def test_killed_run_resumes_in_phase_and_matches_the_unbroken_run(
        setup, unbroken, tmp_path, kill_after, resumed_phase):
    config, env = setup
    want_losses, want_weights = unbroken
    work = str(tmp_path)
    train(config, work, env, kill_after=kill_after)
    resumed = train(config, work, env, resume=True)
    start = int(re.search(r'resumed epoch: \d+, iter: (\d+)', resumed).group(1))
    assert start >= kill_after
    assert (start < WARMUP_ITERS) == resumed_phase.startswith('phase 1')
    assert re.search(rf'{re.escape(resumed_phase)}.*iteration {start + 1}\b', resumed)
    # The switch's one-time actions run in the resumed run only if it was killed before them.
    assert resumed.count('switched to routing') == (start < WARMUP_ITERS)
    got = losses(resumed)
    assert sorted(got) == list(range(start + 1, MAX_ITERS + 1))
    assert {i: want_losses[i] for i in got} == got
    weights = torch.load(osp.join(work, f'iter_{MAX_ITERS}.pth'),
                         weights_only=False)['state_dict']
    for name, value in want_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=0, atol=0, msg=name)
    assert glob.glob(osp.join(work, '*', '*.log'))

"""Two CPU processes on gloo through tools/dist_train.sh (torchrun + mmengine's DDP), over
both training phases: no "unused parameters" error, and both ranks end with the same
parameters."""
import glob
import os
import os.path as osp
import socket
import subprocess
import sys

import torch
from helpers import REPO, narrow_pce_mnist

from pce_mm.datasets.synthetic import write_mnist

RANK_DUMP_HOOK = '''
import os.path as osp
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpRankParameters(Hook):
    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()},
                   osp.join(runner.work_dir, f'rank{runner.rank}.pth'))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_gloo_processes_train_both_phases_and_stay_in_sync(tmp_path):
    write_mnist(str(tmp_path / 'mnist'), num_train=8, num_test=4)
    (tmp_path / 'rank_dump.py').write_text(RANK_DUMP_HOOK)
    config = narrow_pce_mnist(str(tmp_path / 'pce_mnist_dump.py'),
                              "custom_imports = dict(imports=['pce_mm', 'rank_dump'])\n"
                              "custom_hooks = [dict(type='RouterLossScaleHook'), "
                              "dict(type='DumpRankParameters')]\n")
    work = str(tmp_path / 'work')
    options = [
        f'data_root={tmp_path}/mnist', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        'train_cfg.max_epochs=2', 'model.backbone.phase_cfg.warmup_iters=2',
        'default_hooks.logger.interval=1',
        # SyncBN, as distributed configs use it; without CUDA it runs as BN.
        "model.backbone.norm_cfg.type=SyncBN"]
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1',
               PYTHONPATH=f'{tmp_path}:{os.environ.get("PYTHONPATH", "")}')
    run = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', work,
         '--cfg-options'] + options, cwd=REPO, env=env, capture_output=True, text=True,
        timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    log = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    assert "dist_cfg: {'backend': 'gloo'}" in log
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log  # = processes
    assert 'phase 1 (expert warm-up' in log and 'phase 2 (router and deformable' in log
    assert 'loss_router_entropy' in log
    rank0 = torch.load(osp.join(work, 'rank0.pth'))
    rank1 = torch.load(osp.join(work, 'rank1.pth'))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        if not name.endswith(('running_mean', 'running_var', 'num_batches_tracked')):
            torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0, msg=name)

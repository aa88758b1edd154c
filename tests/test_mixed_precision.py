"""200 training iterations of pce_mnist.py under mixed precision (bf16 autocast on a CPU,
through tools/train.py --amp), over both phases, with the router z-loss on: no NaN."""
import re
import subprocess
import sys

from helpers import REPO

from pce_mm.datasets.synthetic import write_mnist

ITERS = 200


def test_two_hundred_bf16_iterations_over_both_phases_stay_finite(tmp_path):
    write_mnist(str(tmp_path / 'mnist'), num_train=64, num_test=4)
    config = tmp_path / 'pce_mnist_amp.py'
    config.write_text(f'''
_base_ = '{REPO}/configs/pce_mnist.py'
model = dict(backbone=dict(warmup_iters=50, router_loss_weights=dict(z=1e-3)))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='{tmp_path}/mnist'))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root='{tmp_path}/mnist'))
test_dataloader = val_dataloader
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={ITERS},
                 val_interval={ITERS})
param_scheduler = dict(_delete_=True, type='MultiStepLR', by_epoch=False, milestones=[150])
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(by_epoch=False, interval=1000))
log_processor = dict(by_epoch=False)
''')
    run = subprocess.run([sys.executable, 'tools/train.py', str(config), '--amp',
                          '--work-dir', str(tmp_path / 'work')], cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert 'No CUDA: --amp trains under bfloat16 autocast' in log
    assert "type='BF16OptimWrapper'" in log
    assert 'phase 2 (router and deformable attention on) from epoch 1, iteration 51' in log
    # an epoch shorter than the interval adds end-of-epoch lines: keep the every-10 ones
    lines = [m.group(0) for m in re.finditer(r'Iter\(train\) \[\s*(\d+)/200\].*', log)
             if int(m.group(1)) % 10 == 0]
    assert len(lines) == ITERS // 10 and f'[{ITERS}/{ITERS}]' in lines[-1]
    losses = [float(v) for line in lines for v in re.findall(r' loss\w*: ([-\w.]+)', line)]
    assert losses and all(v == v and abs(v) < 1e4 for v in losses)   # no nan / inf
    assert 'loss_router_z' in lines[-1]

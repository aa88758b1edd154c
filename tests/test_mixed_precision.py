"""Training pce_mnist.py under mixed precision (bf16 autocast on a CPU, through
tools/train.py --amp), over both phases, with the router z-loss on: every loss finite.

On the narrow PCENet of tests/helpers.py: bf16 is emulated on CPUs without AVX-512, where
the full 'tiny' took 2.7 s a step at batch 4 (546 s for the earlier 200 iterations)."""
import math
import re
import subprocess
import sys

from helpers import REPO, narrow_pce_mnist

from pce_mm.datasets.synthetic import write_mnist

ITERS = 60
WARMUP = 20


def test_bf16_training_over_both_phases_stays_finite(tmp_path):
    write_mnist(str(tmp_path / 'mnist'), num_train=64, num_test=4)
    config = narrow_pce_mnist(str(tmp_path / 'pce_mnist_amp.py'), f'''
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='{tmp_path}/mnist'))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root='{tmp_path}/mnist'))
test_dataloader = val_dataloader
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={ITERS},
                 val_interval={ITERS})
param_scheduler = dict(_delete_=True, type='MultiStepLR', by_epoch=False,
                       milestones=[{ITERS - 10}])
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(by_epoch=False, interval=1000))
log_processor = dict(by_epoch=False)
''', phase_cfg=dict(warmup_iters=WARMUP), loss_cfg=dict(z=1e-3))
    run = subprocess.run([sys.executable, 'tools/train.py', config, '--amp',
                          '--work-dir', str(tmp_path / 'work')], cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert 'No CUDA: --amp trains under bfloat16 autocast' in log
    assert "type='BF16OptimWrapper'" in log
    assert ('phase 2 (router and deformable attention on) from epoch 1, iteration '
            f'{WARMUP + 1}') in log
    # an epoch shorter than the interval adds end-of-epoch lines: keep the every-5 ones
    lines = [m.group(0) for m in re.finditer(rf'Iter\(train\) \[\s*(\d+)/{ITERS}\].*', log)
             if int(m.group(1)) % 5 == 0]
    assert len(lines) == ITERS // 5 and f'[{ITERS}/{ITERS}]' in lines[-1]
    losses = [float(v) for line in lines for v in re.findall(r' loss\w*: ([-\w.]+)', line)]
    assert len(losses) >= len(lines) and all(math.isfinite(v) for v in losses)
    routed = [line for line in lines if int(re.search(r'\[\s*(\d+)/', line).group(1)) > WARMUP]
    z = [float(re.search(r'loss_router_z: ([-\w.]+)', line).group(1)) for line in routed]
    assert len(z) == len(routed) > 0 and all(math.isfinite(v) and v > 0 for v in z)

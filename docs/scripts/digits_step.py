"""One training step (batch 64) and one evaluation forward (batch 128) of the digits
classifiers (28 px, one channel), built from their configs: the ResNet twin, PCENet kept in
phase 1 and PCENet routed. Seconds, median of ``--reps`` after one warm-up.
docs/performance.md, "The routed step on the digits (seventh session)". From the repository
root:

    python docs/scripts/digits_step.py resnet pce1 pce2 [--reps 5] [--profile]
    python docs/scripts/digits_step.py pce2 pce1 --checkpoint work_dirs/digits/pce_s0/epoch_8.pth

Without ``--checkpoint`` the models are freshly initialised and the inputs random (a fresh
router sends most patches to two experts); with it, the PCE models load that checkpoint
and step on the first 128 test digits of ``data/digits``, routed as the trained routers
route them (the training step's learning rate is 0, so every repeat sees the same
weights). ``--profile`` prints the PyTorch profiler's operators by self time for each.
"""
import argparse
import sys

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint
from mmpretrain.registry import DATASETS, MODELS
from mmpretrain.structures import DataSample
from torch.profiler import profile

import pce_mm  # noqa: F401  (registration)

sys.path.insert(0, 'tools/analysis')
from benchmark import median_time  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument('models', nargs='+', choices=['resnet', 'pce1', 'pce2'])
parser.add_argument('--reps', type=int, default=5)
parser.add_argument('--profile', action='store_true')
parser.add_argument('--checkpoint', help='a pce_digits.py checkpoint for the PCE models')
args = parser.parse_args()
torch.set_num_threads(2)
images128 = torch.randn(128, 1, 28, 28)
samples = [DataSample().set_gt_label(i % 10) for i in range(64)]
if args.checkpoint:
    cfg = Config.fromfile('configs/pce_digits.py')
    test_digits = DATASETS.build(cfg.val_dataloader.dataset)
    batch = pseudo_collate([test_digits[i] for i in range(128)])
    # The config's top-level data_preprocessor (mean, std), as the Runner merges it.
    data = MODELS.build(dict(type='ClsDataPreprocessor', **cfg.data_preprocessor))(batch, False)
    images128, samples = data['inputs'], data['data_samples'][:64]
images64 = images128[:64]


def build(name):
    cfg = Config.fromfile(f"configs/{'resnet' if name == 'resnet' else 'pce'}_digits.py")
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if name != 'resnet':
        if args.checkpoint:
            load_checkpoint(model, args.checkpoint, map_location='cpu', logger='silent')
        model.backbone.set_phase(1 if name == 'pce1' else 2)
    return model


def median(fn):
    return median_time(fn, 'cpu', warmup=1, repeats=args.reps)


for name in args.models:
    model = build(name)
    optim = torch.optim.SGD(model.parameters(), lr=0 if args.checkpoint else 0.01,
                            momentum=0.9)

    def train():
        model.train()
        optim.zero_grad()
        losses = model.loss(images64, samples)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optim.step()

    def evaluate():
        model.eval()
        with torch.no_grad():
            model(images128, mode='tensor')

    state = {k: v.clone() for k, v in model.state_dict().items()}
    train_time = median(train)
    model.load_state_dict(state)        # evaluation with the BN statistics it was given
    print(f'{name}: train {train_time:.3f} s, eval {median(evaluate):.3f} s', flush=True)
    if args.profile:
        for fn, tag in ((train, 'train'), (evaluate, 'eval')):
            with profile() as prof:
                fn()
            print(tag, prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=12))

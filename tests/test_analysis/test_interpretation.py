"""Router maps and the class x expert usage matrix, through the real tools, on a classifier
trained for a few iterations (MNIST idx files) and on a Faster R-CNN whose routers are
forced to known behaviour (VOC files)."""
import json
import os.path as osp
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO, build_runner, load_config, load_tool
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import MODELS, init_default_scope
from sklearn.metrics import normalized_mutual_info_score

from pce_mm.analysis import image_pipeline, load_model, normalized_mutual_info, route_batch
from pce_mm.datasets.synthetic import write_mnist
from pce_mm.datasets.voc_demo import write_image_set, write_voc_sample


def run_tool(tool: str, config: str, *args: str) -> None:
    """Runs a tool's ``main`` in this process, on a config of the repository."""
    load_tool(tool).main([osp.join(REPO, config), *args])


@pytest.fixture(scope='module')
def mnist_checkpoint(tmp_path_factory):
    """pce_mnist.py trained for four iterations, two of them routed."""
    root = tmp_path_factory.mktemp('mnist_run')
    write_mnist(str(root / 'data'), num_train=8, num_test=4)
    cfg = load_config('pce_mnist', {
        'data_root': str(root / 'data'), 'train_dataloader.batch_size': 2,
        'train_cfg.max_epochs': 1, 'model.backbone.phase_cfg.warmup_iters': 2,
        'randomness.seed': 0})
    runner = build_runner(cfg, str(root / 'work'))
    runner.train()
    return str(root / 'data'), str(root / 'work' / 'epoch_1.pth')


def test_router_maps_draw_every_stage_and_position_only_is_the_routing_without_content(
        mnist_checkpoint, tmp_path):
    """position_only.json holds, per stage, the expert the model's own routers pick for
    each patch of the first image's grid when the content they read is zero; content
    changes that choice for a real image."""
    data_root, checkpoint = mnist_checkpoint
    rng = np.random.default_rng(0)
    # The first image is 28 x 40 px: grids of 4 x 5 patches in every stage (rows and columns
    # cannot swap unnoticed); the second, 28 x 28 px, is drawn but sets no grid.
    images = [str(tmp_path / 'wide.png'), str(tmp_path / 'square.png')]
    cv2.imwrite(images[0], rng.integers(0, 256, (28, 40), dtype=np.uint8))
    cv2.imwrite(images[1], rng.integers(0, 256, (28, 28), dtype=np.uint8))
    out = tmp_path / 'maps'
    run_tool('tools/analysis/router_maps.py', 'configs/pce_mnist.py', checkpoint,
             '--images', *images, '--out-dir', str(out))
    for name in ('wide', 'square'):
        for stage in (1, 2, 3, 4):
            assert cv2.imread(str(out / f'{name}_stage{stage}.png')) is not None
    saved = json.loads((out / 'position_only.json').read_text())
    assert sorted(saved) == [f'stage{stage}' for stage in (1, 2, 3, 4)]

    # The reference: the backbone's forward on the first image, its routers' content zeroed.
    cfg, model = load_model(osp.join(REPO, 'configs/pce_mnist.py'), checkpoint)
    data = pseudo_collate([image_pipeline(cfg, model)(dict(img_path=images[0]))])
    _, _, routed = route_batch(model, data)
    hooks = [block.router.register_forward_pre_hook(
        lambda router, args: (torch.zeros_like(args[0]), *args[1:]))
        for block in model.backbone.blocks()]
    _, _, contentless = route_batch(model, data)
    for hook in hooks:
        hook.remove()
    for routing in contentless:
        assert routing.top1.shape == (1, 4, 5)
        assert saved[f'stage{routing.stage}'] == routing.top1[0].tolist()
    assert any(saved[f'stage{r.stage}'] != r.top1[0].tolist() for r in routed)


def test_expert_usage_matrices_count_every_routed_patch_once(mnist_checkpoint, tmp_path,
                                                            capsys):
    data_root, checkpoint = mnist_checkpoint
    run_tool('tools/analysis/expert_usage.py', 'configs/pce_mnist.py', checkpoint,
                   '--out-dir', str(tmp_path), '--cfg-options', f'data_root={data_root}',
                   'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False')
    assert 'NMI' in capsys.readouterr().out
    usage = json.loads((tmp_path / 'usage.json').read_text())
    assert usage['rows'][-1] == 'none' and len(usage['rows']) == 11
    for stage in (1, 2, 3, 4):
        counts = np.array(usage['stages'][f'stage{stage}']['counts'])
        assert counts.shape == (11, 8)
        assert counts.sum() == 4 * 16            # 4 test digits, a 4 x 4 patch grid each
        assert counts[-1].sum() == 0             # every patch of a digit has its label
        assert 0 <= usage['stages'][f'stage{stage}']['nmi'] <= 1
        assert cv2.imread(str(tmp_path / f'usage_stage{stage}.png')) is not None
        assert (tmp_path / f'usage_stage{stage}.csv').read_text().startswith('class,E0,')


def test_normalized_mutual_info_is_scikit_learns_and_reproduces_the_readme_figures():
    rng = np.random.default_rng(0)
    for shape in ((21, 8), (3, 2), (10, 4)):
        table = rng.integers(0, 6, size=shape)
        rows, cols = np.nonzero(table)
        classes = np.repeat(rows, table[rows, cols])
        experts = np.repeat(cols, table[rows, cols])
        assert normalized_mutual_info(table) == pytest.approx(
            normalized_mutual_info_score(classes, experts, average_method='arithmetic'))
    saved = json.loads((Path(REPO) / 'docs/expert_usage/usage.json').read_text())
    for stage in saved['stages'].values():
        assert normalized_mutual_info(np.array(stage['counts'])) == pytest.approx(stage['nmi'])


def test_normalized_mutual_info_of_known_tables():
    assert normalized_mutual_info(np.array([[5, 0], [0, 7]])) == pytest.approx(1.0)
    assert normalized_mutual_info(np.array([[2, 4], [3, 6]])) == pytest.approx(0.0, abs=1e-12)
    assert normalized_mutual_info(np.array([[9, 0], [4, 0]])) == 0.0      # one expert only


def force_router(router, mode: str) -> None:
    """'uniform': every logit 0. 'left': expert 1 on the left half of the image (x < 0.5),
    expert 0 elsewhere, from the lowest-frequency cos(pi * x) position feature.
    'left_bias': as 'left', but the right half's expert is chosen by the loss-free balancing
    bias alone (experts 2 then 3), where every logit but expert 1's is 0."""
    first, last = router.mlp[0], router.mlp[2]
    with torch.no_grad():
        for layer in (first, last):
            layer.weight.zero_()
            layer.bias.zero_()
        if mode == 'left':
            f = router.num_freqs
            content = first.in_features - 4 * f
            # Position features: (y sin, y cos, x sin, x cos), f frequencies each.
            first.weight[0, content + 3 * f] = 10.0
            last.weight[1, 0] = 1.0
            last.bias[0] = 0.5
        if mode == 'left_bias':
            f = router.num_freqs
            content = first.in_features - 4 * f
            first.weight[0, content + 3 * f] = 10.0
            last.weight[1, 0] = 1.0
            router.selection_bias.copy_(torch.tensor([0, 0, 0.5, 0.4, 0, 0, 0, 0.]))


@pytest.mark.parametrize('mode, expected', [('uniform', 0.0), ('left', 1.0),
                                            ('left_bias', 1.0)])
def test_mutual_information_is_zero_for_a_uniform_router_and_high_for_one_following_the_class(
        mode, expected, tmp_path):
    # VOC files whose left half is always a cat and whose right half is background.
    voc = tmp_path / 'VOCdevkit'
    rng = np.random.default_rng(0)
    for year in ('VOC2007', 'VOC2012'):
        ids = [f'{year[-2:]}{i:04d}' for i in range(3)]
        for image_id in ids:
            image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
            write_voc_sample(str(voc / year), image_id, image, [('cat', (0, 0, 64, 96))])
        for split in ('trainval', 'test'):
            write_image_set(str(voc / year), 'Main', split, ids)
    cfg = Config.fromfile(osp.join(REPO, 'configs/pce_frcnn_voc.py'))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    for block in model.backbone.blocks():
        force_router(block.router, mode)
    checkpoint = str(tmp_path / 'forced.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    run_tool('tools/analysis/expert_usage.py', 'configs/pce_frcnn_voc.py', checkpoint,
             '--split', 'test', '--out-dir', str(tmp_path / 'usage'), '--cfg-options',
             f'data_root={voc}/', 'test_dataloader.dataset.pipeline.1.scale=(128,96)',
             'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False')
    usage = json.loads((tmp_path / 'usage' / 'usage.json').read_text())
    cat, none = usage['rows'].index('cat'), usage['rows'].index('none')
    for stage in (1, 2, 3, 4):
        result = usage['stages'][f'stage{stage}']
        counts = np.array(result['counts'])
        assert counts.sum() == 3 * 12            # 3 images, 3 x 4 patches of 32 px each
        assert counts[cat].sum() == counts[none].sum() == 18
        assert result['nmi'] == pytest.approx(expected, abs=1e-9)
        if mode != 'uniform':
            # The expert the block ran, not the most probable one: on the right, every logit
            # is 0 but the selection bias picks expert 2 (argmax of the probabilities: 0).
            right = 0 if mode == 'left' else 2
            assert counts[cat, 1] == counts[none, right] == 18
        if mode == 'left_bias':
            # Top-2 loads: expert 1 on the left, 2 everywhere, 3 on the right.
            assert result['load'] == pytest.approx([0, .25, .5, .25, 0, 0, 0, 0])
            assert result['busiest'] == pytest.approx(4.0)

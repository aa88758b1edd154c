"""How often a training step hands a tensor's value to the host (a synchronisation on a GPU),
counted as the README and docs/performance.md state it."""
import pytest
import torch
from helpers import NARROW_ARCH
from mmcv.ops import MultiScaleDeformableAttention

from pce_mm.analysis import HostReads
from pce_mm.models import PCENet


def test_host_reads_counts_each_read_of_a_tensor_value():
    x = torch.arange(4.)
    with HostReads() as reads:
        x.tolist()
        x.sum().item()
        bool(x.any())
        torch.ones(1) + x                              # computing reads nothing
    assert reads.counts == {'tolist': 1, 'item': 1, '__bool__': 1} and reads.total == 3


@pytest.mark.parametrize('phase', [1, 2])
def test_a_training_step_reads_the_host_once_per_routed_block_and_context_module(phase):
    model = PCENet(arch=dict(NARROW_ARCH), num_experts=4, top_k=2).train()
    model.set_phase(phase)
    x = torch.randn(2, 3, 32, 32)
    model(x)                                           # phase 2: the switch happens here
    with HostReads() as reads:
        sum(o.mean() for o in model(x)).backward()
    blocks = len(list(model.blocks()))
    contexts = sum(isinstance(m, MultiScaleDeformableAttention) for m in model.modules())
    assert (blocks, contexts) == (4, 3)
    if phase == 1:
        # the NaN check of the forward: nothing is routed, the attention is off
        assert reads.counts == {'__bool__': 1}
    else:
        # per routed block, its expert batch sizes (`.tolist()`: dropless dispatch splits
        # on the host); per context module, mmcv's shape assert (`bool`); once per step,
        # the NaN check (`bool`) and the router monitor (`.tolist()`)
        assert reads.counts == {'tolist': blocks + 1, '__bool__': contexts + 1}

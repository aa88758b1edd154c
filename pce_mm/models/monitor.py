"""Router monitoring through mmengine: values go to the ``MessageHub``, from which the
``LoggerHook`` writes them to the text log and every visualizer backend (TensorBoard
included) each ``log_interval`` iterations, next to the task losses."""
from typing import Dict, List

import torch
from mmengine.logging import MessageHub

__all__ = ['log_routing']


def log_routing(losses: Dict[str, torch.Tensor], stages: Dict[int, Dict[str, torch.Tensor]],
                expert_shares: bool = True) -> None:
    """Records the weighted router losses (``loss_router_*``) and, per stage ``s``,
    ``router_s<s>_entropy``, ``router_s<s>_imbalance`` and (``expert_shares``) the share of
    each expert ``router_s<s>_load_e<i>``, under the ``train/`` prefix.

    All values are moved to the host at once: one synchronisation per iteration.
    """
    names: List[str] = list(losses)
    values: List[torch.Tensor] = [v.detach().float().reshape(1) for v in losses.values()]
    for stage, stats in stages.items():
        names += [f'router_s{stage}_entropy', f'router_s{stage}_imbalance']
        values += [stats['entropy'].detach().reshape(1), stats['imbalance'].reshape(1)]
        if expert_shares:
            names += [f'router_s{stage}_load_e{i}' for i in range(len(stats['load']))]
            values.append(stats['load'])
    if not names:
        return
    numbers = torch.cat([v.float() for v in values]).tolist()
    MessageHub.get_current_instance().update_scalars(
        {f'train/{name}': value for name, value in zip(names, numbers)})

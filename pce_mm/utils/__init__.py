from .config import (add_router_loss_scale_hook, adapt_to_cpu, enable_amp,
                     enable_visualization, merge_cli_options)

__all__ = ['merge_cli_options', 'adapt_to_cpu', 'enable_visualization', 'enable_amp',
           'add_router_loss_scale_hook']

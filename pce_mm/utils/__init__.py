from .config import (add_pce_hooks, adapt_to_cpu, enable_amp,
                     enable_visualization, merge_cli_options)

__all__ = ['merge_cli_options', 'adapt_to_cpu', 'enable_visualization', 'enable_amp',
           'add_pce_hooks']

from .config import adapt_to_cpu, enable_visualization, merge_cli_options

__all__ = ['merge_cli_options', 'adapt_to_cpu', 'enable_visualization']

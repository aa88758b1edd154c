from .auc import AUC, roc_auc

__all__ = ['AUC', 'roc_auc']

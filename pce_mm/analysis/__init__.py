"""Interpretation of trained PCE models (router maps, class x expert usage) and counts of
what a step costs (host reads, what it keeps for backward)."""
from .host_reads import HostReads
from .routing import (StageRouting, expand_to_input, image_pipeline, load_model,
                      position_only_routing, route_batch)
from .saved_tensors import SavedForBackward
from .usage import accumulate, normalized_mutual_info, patch_classes

__all__ = ['HostReads', 'SavedForBackward', 'StageRouting', 'load_model', 'image_pipeline',
           'route_batch', 'position_only_routing', 'expand_to_input', 'patch_classes',
           'accumulate', 'normalized_mutual_info']

"""Framework-neutral RemBERT: the config, the weight spec, and checkpoint files (numpy only)."""

from .config import RemBertConfig
from .tensor_reader import CheckpointError
from .weights import HEADS, WeightEntry, weight_spec

__all__ = ["HEADS", "CheckpointError", "RemBertConfig", "WeightEntry", "weight_spec"]

"""RemBERT for PyTorch.

>>> from rembert_pt import RemBertForSequenceClassification  # doctest: +SKIP
>>> model = RemBertForSequenceClassification.from_pretrained("path/to/model", num_labels=3)  # doctest: +SKIP
"""

from rembert_spec import RemBertConfig, import_gc, switches

# PyTorch's objects are imported with the collector paused, then frozen (rembert_spec.import_gc).
with import_gc.paused_then_frozen("import_gc" not in switches.disabled_hooks("torch")):
    from .modeling import (
        RemBertForCausalLM,
        RemBertForMaskedLM,
        RemBertForMultipleChoice,
        RemBertForQuestionAnswering,
        RemBertForSequenceClassification,
        RemBertForTokenClassification,
        RemBertModel,
    )
    from .pipeline import pipeline
    from .pretrained import RemBertPreTrainedModel

__all__ = [
    "RemBertConfig",
    "RemBertForCausalLM",
    "RemBertForMaskedLM",
    "RemBertForMultipleChoice",
    "RemBertForQuestionAnswering",
    "RemBertForSequenceClassification",
    "RemBertForTokenClassification",
    "RemBertModel",
    "RemBertPreTrainedModel",
    "pipeline",
]

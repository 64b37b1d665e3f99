"""RemBERT for TensorFlow / Keras 3.

>>> from rembert_tf import TFRemBertForSequenceClassification  # doctest: +SKIP
>>> model = TFRemBertForSequenceClassification.from_pretrained("path/to/model", num_labels=3)  # doctest: +SKIP
"""

from rembert_spec import RemBertConfig, import_gc, switches

# TensorFlow's and Keras' objects are imported with the collector paused, then frozen (rembert_spec.import_gc).
with import_gc.paused_then_frozen("import_gc" not in switches.disabled_hooks("tf")):
    from .modeling import (
        TFRemBertForCausalLM,
        TFRemBertForMaskedLM,
        TFRemBertForMultipleChoice,
        TFRemBertForQuestionAnswering,
        TFRemBertForSequenceClassification,
        TFRemBertForTokenClassification,
        TFRemBertModel,
    )
    from .pipeline import pipeline
    from .pretrained import TFRemBertPreTrainedModel

__all__ = [
    "RemBertConfig",
    "TFRemBertForCausalLM",
    "TFRemBertForMaskedLM",
    "TFRemBertForMultipleChoice",
    "TFRemBertForQuestionAnswering",
    "TFRemBertForSequenceClassification",
    "TFRemBertForTokenClassification",
    "TFRemBertModel",
    "TFRemBertPreTrainedModel",
    "pipeline",
]

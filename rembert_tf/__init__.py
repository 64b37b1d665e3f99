"""RemBERT for TensorFlow / Keras 3.

>>> from rembert_tf import TFRemBertForSequenceClassification  # doctest: +SKIP
>>> model = TFRemBertForSequenceClassification.from_pretrained("path/to/model", num_labels=3)  # doctest: +SKIP
"""

from rembert_spec import RemBertConfig

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

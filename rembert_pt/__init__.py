"""RemBERT for PyTorch.

>>> from rembert_pt import RemBertForSequenceClassification  # doctest: +SKIP
>>> model = RemBertForSequenceClassification.from_pretrained("path/to/model", num_labels=3)  # doctest: +SKIP
"""

from rembert_spec import RemBertConfig

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

"""Task logic for RemBERT, written once for both frameworks: the pipelines' pre- and post-processing (QA windows
and span search, entity grouping, pooling, length-sorted batching), retrieval with sentence embeddings, the
XTREME metrics, and training features for fine-tuning (word labels, QA answer positions).

numpy only: it drives a tokenizer handed to it and reaches the model through a `ModelRunner`, which
`rembert_pt.pipeline` and `rembert_tf.pipeline` provide.
"""

from .base import ModelRunner, Pipeline, PipelineArgumentError
from .factory import ALIASES, TASKS, build_pipeline, resolve_task
from .feature_extraction import l2_normalize, pool
from .retrieval import bitext_f1, margin_scores, mine_pairs, nearest_neighbours, retrieval_accuracy, similarity

__all__ = [
    "ALIASES",
    "TASKS",
    "ModelRunner",
    "Pipeline",
    "PipelineArgumentError",
    "bitext_f1",
    "build_pipeline",
    "l2_normalize",
    "margin_scores",
    "mine_pairs",
    "nearest_neighbours",
    "pool",
    "resolve_task",
    "retrieval_accuracy",
    "similarity",
]

"""The TensorFlow pipelines give what the PyTorch pipelines give, on the same checkpoints and inputs."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import MASKED, PAIRS, QA_EXAMPLES, TEXTS, assert_same, ours

CASES = [
    ("fill-mask", "masked_lm", MASKED, {"top_k": 3}),
    ("fill-mask", "masked_lm", MASKED[2], {"targets": ["end", "Köln"]}),
    ("text-classification", "sequence_classification", TEXTS + PAIRS, {"top_k": None}),
    ("text-classification", "sequence_classification", PAIRS[0], {}),
    ("token-classification", "token_classification", TEXTS, {"aggregation_strategy": "none"}),
    ("token-classification", "token_classification", TEXTS, {"aggregation_strategy": "simple"}),
    ("token-classification", "token_classification", TEXTS, {"aggregation_strategy": "average"}),
    ("question-answering", "question_answering", QA_EXAMPLES, {"max_seq_len": 48, "doc_stride": 16, "top_k": 3}),
    (
        "question-answering",
        "question_answering",
        QA_EXAMPLES,
        {"max_seq_len": 40, "doc_stride": 8, "handle_impossible_answer": True, "align_to_words": False},
    ),
    ("feature-extraction", "masked_lm", TEXTS[:3], {}),
    ("feature-extraction", "question_answering", TEXTS[:3], {"pooling": "cls", "layer": 1}),
]


@pytest.mark.parametrize("task, head, inputs, kwargs", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_tensorflow_equals_pytorch(task_dirs, task, head, inputs, kwargs):
    directory = task_dirs[head]
    pt = ours("pt", task, directory)(inputs, batch_size=3, **kwargs)
    tf = ours("tf", task, directory)(inputs, batch_size=3, **kwargs)
    assert_same(tf, pt, atol=1e-4 if task == "feature-extraction" else 1e-5)


def test_sentence_embeddings_tensorflow_equals_pytorch(task_dirs):
    directory = task_dirs["masked_lm"]
    pt = ours("pt", "sentence-embeddings", directory)(TEXTS)
    tf = ours("tf", "sentence-embeddings", directory)(TEXTS)
    assert pt.shape == tf.shape == (len(TEXTS), 24)
    np.testing.assert_allclose(tf, pt, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(pt, axis=1), 1.0, rtol=1e-5)

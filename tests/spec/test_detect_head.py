"""Which head wrote a checkpoint, judged from its tensors and its config, for every head and number of labels
(the converter and `from_pretrained` of the base model rely on it)."""

from __future__ import annotations

import pytest

from rembert_spec.checkpoint import open_checkpoint
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import HEADS, detect_head
from tests.batches import config_for

# A question-answering head has exactly two labels (start, end); the others take any number.
CASES = [(head, n) for head in HEADS for n in (1, 2, 5) if head != "question_answering" or n == 2]


@pytest.mark.parametrize("head, num_labels", CASES)
def test_the_head_that_wrote_a_checkpoint_is_detected(head, num_labels, tmp_path):
    config = config_for(head, num_labels=num_labels)
    write_random_checkpoint(tmp_path, config, head)
    with open_checkpoint(tmp_path, config) as checkpoint:
        detected = detect_head(checkpoint, config)
    if head == "multiple_choice" and num_labels == 1:
        # A one-wide pooled classifier with num_labels=1 in its config is a regression classifier's.
        assert detected == "sequence_classification"
    else:
        assert detected == head

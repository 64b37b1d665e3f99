"""SQuAD token F1 counts repeated tokens as often as both answers hold them (a multiset intersection, as in the
SQuAD v1.1 evaluation script), checked on hand-computed cases."""

from __future__ import annotations

import pytest

from rembert_tasks.metrics import f1, squad_scores


def _f1(common: int, predicted: int, true: int) -> float:
    precision, recall = common / predicted, common / true
    return 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize(
    "prediction, truth, expected",
    [
        # normalised: [cat, sat, on, mat, cat] and [cat, cat, dog]: "cat" is common twice
        ("The cat sat on the mat, the cat!", "cat cat dog", _f1(2, 5, 3)),
        # "red" twice in the prediction, once in the truth: common once
        ("red red car", "a red car", _f1(2, 3, 2)),
        # three times against twice: common twice
        ("go go go", "go go", _f1(2, 3, 2)),
    ],
)
def test_repeated_tokens_count_as_often_as_both_answers_hold_them(prediction, truth, expected):
    assert f1(prediction, truth) == pytest.approx(expected)


def test_squad_scores_take_the_best_gold_answer_with_repeated_tokens():
    scores = squad_scores({"q": "cat cat"}, {"q": ["cat", "the cat cat dog"]})
    assert scores == {"exact_match": 0.0, "f1": pytest.approx(100 * _f1(2, 2, 3)), "count": 1}

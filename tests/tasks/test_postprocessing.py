"""The task logic on hand-computed cases: QA span search and answer merging, entity grouping, training features,
metrics, pooling and retrieval, batching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rembert_tasks.batching import pad_batch, run_sorted
from rembert_tasks.feature_extraction import l2_normalize, pool
from rembert_tasks.features import align_word_labels, answer_token_span, word_predictions
from rembert_tasks.metrics import accuracy, entity_scores, exact_match, f1, normalize_answer, squad_scores
from rembert_tasks.question_answering import answer_chars, best_spans, merge_answers, span_probabilities
from rembert_tasks.retrieval import (
    bitext_f1,
    margin_scores,
    mine_pairs,
    nearest_neighbours,
    retrieval_accuracy,
    similarity,
)
from rembert_tasks.token_classification import aggregate, drop_overlaps, group_entities, is_subword

# -- question answering ------------------------------------------------------------------------------------

# "[CLS] q [SEP] ▁Le ▁ca fé ▁noir [SEP]" over the context "Le café noir"
CONTEXT = "Le café noir"
WINDOW = {
    "input_ids": [2, 50, 3, 60, 61, 62, 63, 3],
    "offsets": [(0, 0), (0, 1), (0, 0), (0, 2), (2, 5), (5, 7), (7, 12), (0, 0)],
    "word_ids": [None, 0, None, 0, 1, 1, 2, None],
    "sequence_ids": [None, 0, None, 1, 1, 1, 1, None],
    "answer_mask": [1, 0, 0, 1, 1, 1, 1, 0],
    "context_sequence": 1,
}


def test_span_probabilities_softmax_over_answer_tokens_and_null_score():
    mask = [1, 0, 1, 1]
    start, end, null = span_probabilities(
        np.array([0.0, 5.0, 0.0, math.log(2)]), np.array([math.log(3), 9.0, 0.0, 0.0]), mask
    )
    # allowed start logits 0, 0, ln 2 -> 1:1:2; end ln 3, 0, 0 -> 3:1:1; [CLS] then zeroed
    np.testing.assert_allclose(start, [0, 0, 0.25, 0.5])
    np.testing.assert_allclose(end, [0, 0, 0.2, 0.2])
    assert null == pytest.approx(0.25 * 0.6)


def test_best_spans_order_length_limit_and_count():
    start, end = np.array([0, 0, 0.25, 0.5]), np.array([0, 0, 0.2, 0.2])
    mask = [1, 0, 1, 1]
    assert best_spans(start, end, mask, 10, 2) == [(3, 3, pytest.approx(0.1)), (2, 2, 0.05), (2, 3, 0.05)]
    assert best_spans(start, end, mask, 10, 1) == [(3, 3, pytest.approx(0.1)), (2, 2, 0.05)]  # (2, 3) too long
    assert best_spans(start, end, mask, 1, 2) == [(3, 3, pytest.approx(0.1))]
    assert best_spans(start, end, [1, 0, 0, 1], 10, 5) == [(3, 3, pytest.approx(0.1))]  # token 2 not allowed


def test_answer_chars_words_or_tokens():
    assert answer_chars(WINDOW, 5, 5) == (2, 7)  # "fé" widened to its word " café"
    assert CONTEXT[2:7] == " café"
    assert answer_chars(WINDOW, 5, 5, align_to_words=False) == (5, 7)
    assert answer_chars(WINDOW, 3, 6) == (0, 12)


def test_merge_answers_adds_scores_of_the_same_text_and_ranks_the_null_answer():
    # both windows see "ab ab"; window 1: uniform (1/3 each at [CLS], ab, ab); window 2: start 1:2:1, end uniform
    context = "ab ab"
    window = {
        "offsets": [(0, 0), (0, 1), (0, 0), (0, 2), (2, 5), (0, 0)],
        "word_ids": [None, 0, None, 0, 1, None],
        "sequence_ids": [None, 0, None, 1, 1, None],
        "answer_mask": [1, 0, 0, 1, 1, 0],
        "context_sequence": 1,
    }
    logits = [(np.zeros(6), np.zeros(6)), (np.array([0, 0, 0, math.log(2), 0, 0]), np.zeros(6))]
    answers = merge_answers(context, [window, window], logits, top_k=4, handle_impossible_answer=True)
    assert [(a["answer"], a["start"], a["end"]) for a in answers] == [
        ("ab", 0, 2),
        ("ab ab", 0, 5),
        (" ab", 2, 5),
        ("", 0, 0),
    ]
    np.testing.assert_allclose([a["score"] for a in answers], [1 / 9 + 1 / 6, 1 / 9 + 1 / 6, 1 / 9 + 1 / 12, 1 / 12])
    assert merge_answers(context, [window, window], logits, top_k=1) == [answers[0]]


def test_answer_token_span_for_training():
    assert answer_token_span(WINDOW, CONTEXT.index("café"), CONTEXT.index("café") + 4) == (4, 5)
    assert answer_token_span(WINDOW, 0, 2) == (3, 3)
    assert answer_token_span(WINDOW, 8, 12) == (6, 6)
    outside = {**WINDOW, "offsets": WINDOW["offsets"][:6] + [(7, 9), (0, 0)]}  # the window ends inside "noir"
    assert answer_token_span(outside, 8, 12) == (0, 0)


# -- token classification ----------------------------------------------------------------------------------

LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
SENTENCE = "Angela Merkel in Paris"


def record(word, start, end, index, scores):
    return {
        "word": word,
        "start": start,
        "end": end,
        "index": index,
        "scores": np.array(scores),
        "is_subword": is_subword(SENTENCE, start),
    }


TOKENS = [
    record("▁Ang", 0, 3, 1, [0.05, 0.9, 0.05, 0, 0]),
    record("ela", 3, 6, 2, [0.4, 0, 0.6, 0, 0]),
    record("▁Merkel", 6, 13, 3, [0.1, 0.1, 0.8, 0, 0]),
    record("▁in", 13, 16, 4, [0.95, 0, 0, 0.05, 0]),
    record("▁Par", 16, 20, 5, [0.1, 0, 0, 0.7, 0.2]),
    record("is", 20, 22, 6, [0.55, 0, 0, 0, 0.45]),
]


def join(pieces):
    return "".join(pieces).replace("▁", " ").strip()


def test_subwords_follow_no_space():
    assert [token["is_subword"] for token in TOKENS] == [False, True, False, False, False, True]


def test_aggregate_none_is_one_entity_per_token():
    entities = aggregate(TOKENS, "none", LABELS, join)
    assert [(e["entity"], e["index"], e["word"]) for e in entities] == [
        ("B-PER", 1, "▁Ang"),
        ("I-PER", 2, "ela"),
        ("I-PER", 3, "▁Merkel"),
        ("O", 4, "▁in"),
        ("B-LOC", 5, "▁Par"),
        ("O", 6, "is"),
    ]
    assert entities[1]["score"] == pytest.approx(0.6)


def groups(entities):
    return [(e["entity_group"], e["word"], e["start"], e["end"], round(e["score"], 6)) for e in entities]


def test_aggregate_simple_merges_tokens_of_one_type():
    assert groups(aggregate(TOKENS, "simple", LABELS, join)) == [
        ("PER", "Angela Merkel", 0, 13, round((0.9 + 0.6 + 0.8) / 3, 6)),
        ("O", "in", 13, 16, 0.95),
        ("LOC", "Par", 16, 20, 0.7),
        ("O", "is", 20, 22, 0.55),
    ]


def test_aggregate_first_average_max_label_whole_words():
    # Words are joined as token strings, so word-level groups lose their spaces (as in Hugging Face): the
    # entity's text is sentence[start:end].
    assert groups(aggregate(TOKENS, "first", LABELS, join)) == [
        ("PER", "AngelaMerkel", 0, 13, round((0.9 + 0.8) / 2, 6)),
        ("O", "in", 13, 16, 0.95),
        ("LOC", "Paris", 16, 22, 0.7),
    ]
    # Angela: mean scores [.225, .45, .325, 0, 0] -> B-PER .45; Paris: [.325, 0, 0, .35, .325] -> B-LOC .35
    assert groups(aggregate(TOKENS, "average", LABELS, join)) == [
        ("PER", "AngelaMerkel", 0, 13, round((0.45 + 0.8) / 2, 6)),
        ("O", "in", 13, 16, 0.95),
        ("LOC", "Paris", 16, 22, 0.35),
    ]
    assert groups(aggregate(TOKENS, "max", LABELS, join)) == [
        ("PER", "AngelaMerkel", 0, 13, round((0.9 + 0.8) / 2, 6)),
        ("O", "in", 13, 16, 0.95),
        ("LOC", "Paris", 16, 22, 0.7),
    ]


def test_group_entities_b_starts_a_new_group_and_plain_labels_continue():
    entities = [
        {"entity": "B-PER", "score": 1.0, "word": "a", "start": 0, "end": 1},
        {"entity": "B-PER", "score": 0.5, "word": "b", "start": 1, "end": 2},
        {"entity": "I-PER", "score": 0.0, "word": "c", "start": 2, "end": 3},
        {"entity": "DATE", "score": 0.2, "word": "d", "start": 3, "end": 4},
        {"entity": "DATE", "score": 0.4, "word": "e", "start": 4, "end": 5},
    ]
    assert groups(group_entities(entities, "".join)) == [
        ("PER", "a", 0, 1, 1.0),
        ("PER", "bc", 1, 3, 0.25),
        ("DATE", "de", 3, 5, 0.3),
    ]


def test_drop_overlaps_keeps_the_longest_then_the_most_confident():
    def entity(start, end, score):
        return {"start": start, "end": end, "score": score}

    found = [entity(10, 12, 0.9), entity(0, 5, 0.5), entity(3, 9, 0.6), entity(10, 12, 0.95), entity(20, 21, 0.1)]
    assert drop_overlaps(found) == [entity(3, 9, 0.6), entity(10, 12, 0.95), entity(20, 21, 0.1)]
    assert drop_overlaps([]) == []


def test_aggregate_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="aggregation_strategy must be one of"):
        aggregate(TOKENS, "longest", LABELS)


def test_word_labels_first_token_only():
    word_ids = [None, 0, 0, 1, 2, 2, 2, None]
    assert align_word_labels(word_ids, [3, 0, 5]) == [-100, 3, -100, 0, 5, -100, -100, -100]
    assert align_word_labels(word_ids, [3, 0, 5], label_all_tokens=True) == [-100, 3, 3, 0, 5, 5, 5, -100]
    assert word_predictions(["B", "x", "O", "I", "y", "z", "s"], [None, 0, 0, 1, 2, 2, None], 4, "O") == [
        "x",
        "I",
        "y",
        "O",  # word 3 was truncated away
    ]


# -- metrics -----------------------------------------------------------------------------------------------


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("¿Dónde?") == "¿dónde"  # SQuAD v1.1 removes ASCII punctuation only
    assert normalize_answer("¿Dónde está la casa?", "es") == "dónde está casa"
    assert normalize_answer("Das Haus, der Garten", "de") == "haus garten"
    assert normalize_answer("北京大学。", "zh") == "北 京 大 学"
    assert exact_match("the Cat", "cat") == 1.0
    assert f1("a big red cat", "the red cat") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert f1("北京", "北京大学", "zh") == pytest.approx(2 / 3)
    assert f1("", "") == 1.0 and f1("the", "cat") == 0.0
    scores = squad_scores({"q1": "Paris", "q2": "in London"}, {"q1": ["paris", "Lyon"], "q2": ["London"], "q3": ["x"]})
    assert scores == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 * (1 + 2 / 3) / 3), "count": 3}


def test_entity_scores_with_seqeval_and_accuracy():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    # true entities: PER, LOC, ORG; predicted: PER, ORG, LOC(wrong place) -> 2 of 3 right each way
    assert entity_scores(true, predicted) == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    with pytest.raises(ValueError, match="sentence 1 has 2 true tags but 1 predicted"):
        entity_scores(true, [predicted[0], ["O"]])
    assert accuracy([1, 2, 3, 4], [1, 0, 3, 4]) == 0.75


# -- pooling and retrieval ---------------------------------------------------------------------------------


def test_pool_and_normalize():
    hidden = np.array([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    np.testing.assert_allclose(pool(hidden, np.array([[1, 1, 0]]), "mean"), [[2.0, 2.0]])
    np.testing.assert_allclose(pool(hidden, None, "cls"), [[1.0, 0.0]])
    np.testing.assert_allclose(l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]])
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool(hidden, None, "max")


def test_similarity_margin_and_retrieval():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.1]])
    cosine = similarity(a, b)
    np.testing.assert_allclose(cosine[0], [0.0, 1 / math.sqrt(2), 1 / math.sqrt(1.01)], rtol=1e-6)
    np.testing.assert_allclose(similarity(a, b, metric="dot"), a @ b.T)
    # k=1: each side's best cosine; margin = cos / mean(best of a's row, best of b's column)
    row_best, column_best = cosine.max(axis=1), cosine.max(axis=0)
    expected = cosine / ((row_best[:, None] + column_best[None, :]) / 2)
    np.testing.assert_allclose(margin_scores(a, b, k=1), expected, rtol=1e-6)
    assert nearest_neighbours(a, b).tolist() == [2, 0]
    assert retrieval_accuracy(a, b[[2, 0]]) == 1.0 and retrieval_accuracy(a, b[[0, 2]]) == 0.0
    pairs = mine_pairs(a, b, k=1)
    assert {(i, j) for i, j, _ in pairs} == {(0, 2), (1, 0), (0, 1)} or {(i, j) for i, j, _ in pairs} == {
        (0, 2),
        (1, 0),
        (1, 1),
    }
    assert [p[2] for p in pairs] == sorted((p[2] for p in pairs), reverse=True)
    assert mine_pairs(a, b, k=1, threshold=10.0) == []
    assert bitext_f1([(0, 2), (1, 1)], [(0, 2), (1, 0)]) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    with pytest.raises(ValueError, match="different sizes"):
        similarity(a, np.ones((2, 3)))


# -- batching ----------------------------------------------------------------------------------------------


def test_pad_batch_and_run_sorted_keep_input_order():
    features = [{"input_ids": [5, 6]}, {"input_ids": [7, 8, 9, 10]}, {"input_ids": [11]}, {"input_ids": [12, 13, 14]}]
    batch = pad_batch(features[:2], pad_token_id=0)
    np.testing.assert_array_equal(batch["input_ids"], [[5, 6, 0, 0], [7, 8, 9, 10]])
    np.testing.assert_array_equal(batch["attention_mask"], [[1, 1, 0, 0], [1, 1, 1, 1]])
    assert batch["token_type_ids"].shape == (2, 4)
    seen = []

    def run_batch(batch):
        seen.append(batch["input_ids"].shape)
        return {"logits": batch["input_ids"] * 10}

    def keep(feature, outputs, row):
        return {"logits": outputs["logits"][row, : len(feature["input_ids"])].tolist()}

    kept = run_sorted(features, run_batch, keep, batch_size=2, pad_token_id=0)
    assert [k["logits"] for k in kept] == [[50, 60], [70, 80, 90, 100], [110], [120, 130, 140]]
    assert seen == [(2, 4), (2, 2)]  # longest first: (4, 3 tokens) then (2, 1)

"""Our PyTorch pipelines against Hugging Face's (transformers 4.57, PyTorch) on the same checkpoint directory:
the same answers, spans, entities and tokens, scores within 1e-5, on multilingual inputs and long contexts."""

from __future__ import annotations

import warnings

import pytest

from .conftest import MASKED, PAIRS, QA_EXAMPLES, TEXTS, assert_same, hugging_face, ours


def both(task: str, directory, inputs, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Hugging Face warns that RemBERT's tokenizer has no word markers
        theirs = hugging_face(task, directory)(inputs, **kwargs)
    return ours("pt", task, directory)(inputs, **kwargs), theirs


@pytest.mark.parametrize(
    "inputs, kwargs",
    [
        (MASKED[0], {}),
        (MASKED[1], {"top_k": 3}),  # two masks: a list per mask, special tokens kept in the sequences
        (MASKED, {"top_k": 2}),
        (MASKED[:1], {}),  # a list of one text answers like the text
        (MASKED[2:], {"targets": ["end", "き", "Köln", "▁the"]}),
        (MASKED[0], {"targets": "zzzq", "top_k": 4}),  # not a token: its first piece is scored
    ],
)
def test_fill_mask(task_dirs, inputs, kwargs):
    assert_same(*both("fill-mask", task_dirs["masked_lm"], inputs, **kwargs))


@pytest.mark.parametrize(
    "inputs, kwargs",
    [
        (TEXTS[0], {}),  # one text: a list holding one dict
        (TEXTS, {}),
        (TEXTS[3], {"top_k": 2}),
        (TEXTS[:3], {"top_k": None}),
        (PAIRS[0], {}),  # a pair: the dict itself
        (PAIRS, {"top_k": 3}),
        (TEXTS[:2], {"function_to_apply": "sigmoid"}),
        (PAIRS[1], {"function_to_apply": "none", "top_k": 1}),
    ],
)
def test_text_classification(task_dirs, inputs, kwargs):
    assert_same(*both("text-classification", task_dirs["sequence_classification"], inputs, **kwargs))


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification(task_dirs, strategy):
    assert_same(*both("token-classification", task_dirs["token_classification"], TEXTS, aggregation_strategy=strategy))


@pytest.mark.parametrize("strategy", ["simple", "first", "max"])
def test_token_classification_ignore_labels_and_one_text(task_dirs, strategy):
    directory = task_dirs["token_classification"]
    kwargs = {"aggregation_strategy": strategy, "ignore_labels": ["O", "B-PER", "I-LOC"]}
    assert_same(*both("token-classification", directory, TEXTS[0], **kwargs))


def test_token_classification_pre_split_words(task_dirs):
    words = ["Angela", "Merkel", "besuchte", "São", "Paulo", "東京", "タワー"]
    kwargs = {"is_split_into_words": True, "aggregation_strategy": "average"}
    assert_same(*both("token-classification", task_dirs["token_classification"], words, **kwargs))


@pytest.mark.parametrize("strategy", ["simple", "first", "average", "max"])
def test_token_classification_long_text_in_windows(task_dirs, strategy):
    """A text longer than the model's positions: windows with a stride, entities of overlaps joined."""
    directory = task_dirs["token_classification"]
    text = " ".join(TEXTS[:5]) * 3
    ours_pipeline, theirs_pipeline = (
        ours("pt", "token-classification", directory),
        hugging_face("token-classification", directory),
    )
    limit = ours_pipeline.tokenizer.model_max_length
    theirs_pipeline.tokenizer.model_max_length = 32  # Hugging Face cuts windows at the tokenizer's limit
    ours_pipeline.tokenizer.model_max_length = 32
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = theirs_pipeline(text, aggregation_strategy=strategy, stride=8)
        result = ours_pipeline(text, aggregation_strategy=strategy, stride=8)
    finally:
        theirs_pipeline.tokenizer.model_max_length = ours_pipeline.tokenizer.model_max_length = limit
    assert len(result) > 5
    assert_same(result, theirs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_seq_len": 48, "doc_stride": 16},
        {"max_seq_len": 48, "doc_stride": 16, "top_k": 5},
        {"max_seq_len": 40, "doc_stride": 12, "top_k": 3, "handle_impossible_answer": True},
        {"max_seq_len": 56, "doc_stride": 20, "top_k": 4, "align_to_words": False, "max_answer_len": 4},
        {"max_seq_len": 64, "doc_stride": 32, "top_k": 2, "max_answer_len": 30},
    ],
)
def test_question_answering_long_contexts(task_dirs, kwargs):
    directory = task_dirs["question_answering"]
    tokenizer = ours("pt", "question-answering", directory).tokenizer
    windows = tokenizer(
        QA_EXAMPLES[1]["question"],
        QA_EXAMPLES[1]["context"],
        truncation="only_second",
        max_length=kwargs["max_seq_len"],
        stride=kwargs["doc_stride"],
        return_overflowing_tokens=True,
    )
    assert len(windows["input_ids"]) > 3  # the context takes several windows
    assert_same(*both("question-answering", directory, QA_EXAMPLES, **kwargs))


def test_question_answering_call_forms(task_dirs):
    directory = task_dirs["question_answering"]
    example = QA_EXAMPLES[0]
    kwargs = {"max_seq_len": 48, "doc_stride": 16}
    assert_same(*both("question-answering", directory, example, **kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = hugging_face("question-answering", directory)(
            question=[e["question"] for e in QA_EXAMPLES], context=LONG_CONTEXT_FOR_ALL, **kwargs
        )
        mine = ours("pt", "question-answering", directory)(
            question=[e["question"] for e in QA_EXAMPLES], context=LONG_CONTEXT_FOR_ALL, **kwargs
        )
    assert_same(mine, theirs)
    assert_same(
        ours("pt", "question-answering", directory)(example["question"], example["context"], **kwargs),
        hugging_face("question-answering", directory)(example["question"], example["context"], **kwargs),
    )


LONG_CONTEXT_FOR_ALL = QA_EXAMPLES[3]["context"]


def test_feature_extraction(task_dirs):
    directory = task_dirs["masked_lm"]
    mine, theirs = both("feature-extraction", directory, TEXTS[:3])
    assert_same(mine, theirs, atol=1e-4)
    assert len(mine[0]) == 1 and len(mine[0][0][0]) == 24  # [1, tokens, hidden] per text, as Hugging Face

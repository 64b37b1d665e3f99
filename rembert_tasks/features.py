"""Training features for fine-tuning on XTREME's task shapes, from tokenizer outputs (both frameworks' recipes use
them):

- token classification (WikiANN NER, UD POS): word labels spread over tokens (`align_word_labels`: the first
  token of each word carries its word's label, the others and the special tokens -100, which the loss ignores)
  and predictions read back per word (`word_predictions`);
- extractive QA (SQuAD shape): windows over long contexts with the answer's start and end token in each, or
  [CLS] (position 0) where the window does not hold the whole answer (`qa_train_features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .question_answering import qa_windows

IGNORE_INDEX = -100


def align_word_labels(
    word_ids: Sequence[int | None], word_labels: Sequence[int], label_all_tokens: bool = False
) -> list[int]:
    """A label per token: the first token of each word gets the word's label; later tokens of the word get -100
    (or the word's label too, with `label_all_tokens`); special tokens (word id None) -100."""
    labels, previous = [], None
    for word in word_ids:
        if word is None:
            labels.append(IGNORE_INDEX)
        elif word != previous:
            labels.append(int(word_labels[word]))
        else:
            labels.append(int(word_labels[word]) if label_all_tokens else IGNORE_INDEX)
        previous = word
    return labels


def word_predictions(
    token_predictions: Sequence[Any], word_ids: Sequence[int | None], n_words: int, missing: Any = None
) -> list[Any]:
    """The prediction of each word: that of its first token. Words cut off by truncation get `missing`."""
    predictions = [missing] * n_words
    seen = set()
    for prediction, word in zip(token_predictions, word_ids, strict=True):
        if word is not None and word not in seen:
            predictions[word] = prediction
            seen.add(word)
    return predictions


def answer_token_span(window: dict[str, Any], start_char: int, end_char: int) -> tuple[int, int]:
    """(start token, end token) of the answer characters [start_char, end_char) in a window (from `qa_windows`),
    or (0, 0), the [CLS] position, when the window does not hold the whole answer."""
    sequence = window["context_sequence"]
    context = [i for i, s in enumerate(window["sequence_ids"]) if s == sequence]
    offsets = window["offsets"]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return 0, 0
    start = max(i for i in context if offsets[i][0] <= start_char)
    end = min(i for i in context if offsets[i][1] >= end_char)
    return start, end


def qa_train_features(
    tokenizer: Any,
    questions: Sequence[str],
    contexts: Sequence[str],
    answer_starts: Sequence[int],
    answer_texts: Sequence[str],
    max_seq_len: int = 384,
    doc_stride: int = 128,
) -> dict[str, list]:
    """Training rows for extractive QA: every window of every (question, context), with `start_positions` and
    `end_positions` of its answer (0 where the window lacks it) and `example_index`, the question it comes from."""
    if not len(questions) == len(contexts) == len(answer_starts) == len(answer_texts):
        raise ValueError("qa_train_features: questions, contexts, answer_starts and answer_texts differ in length")
    for index, (context, start, text) in enumerate(zip(contexts, answer_starts, answer_texts, strict=True)):
        if context[start : start + len(text)] != text:
            raise ValueError(
                f"qa_train_features: example {index}: the answer {text!r} is not at character {start} of its "
                f"context (found {context[start : start + len(text)]!r})"
            )
    rows: dict[str, list] = {
        "input_ids": [],
        "token_type_ids": [],
        "start_positions": [],
        "end_positions": [],
        "example_index": [],
    }
    windows = qa_windows(tokenizer, questions, contexts, max_seq_len, doc_stride)
    for index, example_windows in enumerate(windows):
        start_char = answer_starts[index]
        end_char = start_char + len(answer_texts[index])
        for window in example_windows:
            start, end = answer_token_span(window, start_char, end_char)
            rows["input_ids"].append(window["input_ids"])
            rows["token_type_ids"].append(window["token_type_ids"])
            rows["start_positions"].append(start)
            rows["end_positions"].append(end)
            rows["example_index"].append(index)
    return rows

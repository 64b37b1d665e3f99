"""question-answering (extractive): answers as character spans of the original context, found in windows over long
contexts, as Hugging Face's QuestionAnsweringPipeline finds them.

The steps, each a function usable on its own (the XTREME QA recipe evaluates through them):

1. `qa_windows`: question + context cut into windows of `max_seq_len` tokens overlapping by `doc_stride`
   (the tokenizer's overflow windows), with a mask of the tokens an answer may use (the context's);
2. `span_probabilities` + `best_spans`: in each window, start and end logits become probabilities over the
   answer tokens, and the n best spans (start <= end < start + max_answer_len) are taken by p(start) * p(end);
3. `answer_chars` + `merge_answers`: each span becomes characters of the context (widened to whole words with
   `align_to_words`), answers with the same text from different spans or windows add their scores, and the
   null answer (`{"answer": "", "start": 0, "end": 0}`) competes when `handle_impossible_answer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import Pipeline, check_positive_int, check_text

# Logit given to tokens that cannot be part of an answer before the softmax (their probability becomes 0).
_MASKED_LOGIT = -10000.0


def qa_windows(
    tokenizer: Any,
    questions: Sequence[str],
    contexts: Sequence[str],
    max_seq_len: int,
    doc_stride: int,
    question_first: bool = True,
) -> list[list[dict[str, Any]]]:
    """For each (question, context), its windows: `input_ids`, `token_type_ids`, `offsets`, `word_ids`,
    `sequence_ids` and `answer_mask` (1 where an answer may start or end: context tokens and [CLS])."""
    first, second = (questions, contexts) if question_first else (contexts, questions)
    encoded = tokenizer(
        list(first),
        list(second),
        truncation="only_second" if question_first else "only_first",
        max_length=max_seq_len,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
    )
    context_sequence = 1 if question_first else 0
    windows: list[list[dict[str, Any]]] = [[] for _ in questions]
    for row, sample in enumerate(encoded["overflow_to_sample_mapping"]):
        input_ids = encoded["input_ids"][row]
        sequence_ids = encoded.sequence_ids(row)
        answer_mask = [int(s == context_sequence) for s in sequence_ids]
        if tokenizer.cls_token_id is not None:  # [CLS] stays: it is where "no answer" is read
            cls_id = tokenizer.cls_token_id
            answer_mask = [1 if token == cls_id else m for token, m in zip(input_ids, answer_mask, strict=True)]
        windows[sample].append(
            {
                "input_ids": input_ids,
                "token_type_ids": encoded["token_type_ids"][row],
                "offsets": [tuple(span) for span in encoded["offset_mapping"][row]],
                "word_ids": encoded.word_ids(row),
                "sequence_ids": sequence_ids,
                "answer_mask": answer_mask,
                "context_sequence": context_sequence,
            }
        )
    return windows


def span_probabilities(
    start_logits: np.ndarray, end_logits: np.ndarray, answer_mask: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, float]:
    """(p_start, p_end, null score) of one window: softmax over the tokens an answer may use; the null score is
    p_start * p_end at [CLS] (position 0), whose probabilities are then set to 0 so no span starts there."""
    allowed = np.asarray(answer_mask, dtype=bool)

    def normalise(logits: np.ndarray) -> np.ndarray:
        logits = np.where(allowed, np.asarray(logits, dtype=np.float64), _MASKED_LOGIT)
        exp = np.exp(logits - logits.max())
        return exp / exp.sum()

    start, end = normalise(start_logits), normalise(end_logits)
    null_score = float(start[0] * end[0])
    start[0] = end[0] = 0.0
    return start, end, null_score


def best_spans(
    start: np.ndarray, end: np.ndarray, answer_mask: Sequence[int], top_n: int, max_answer_len: int
) -> list[tuple[int, int, float]]:
    """The `top_n` spans (start token, end token, p_start * p_end) of positive score, best first, with
    start <= end < start + max_answer_len and both ends on tokens an answer may use."""
    allowed = np.asarray(answer_mask, dtype=bool)
    scores = np.outer(start * allowed, end * allowed)
    scores = np.tril(np.triu(scores), max_answer_len - 1)  # end >= start, end - start < max_answer_len
    flat = scores.ravel()
    candidates = np.flatnonzero(flat > 0)
    if len(candidates) > top_n:
        candidates = candidates[np.argpartition(-flat[candidates], top_n - 1)[:top_n]]
    candidates = candidates[np.argsort(-flat[candidates], kind="stable")]
    starts, ends = np.unravel_index(candidates, scores.shape)
    return [(int(s), int(e), float(flat[c])) for s, e, c in zip(starts, ends, candidates, strict=True)]


def answer_chars(window: Mapping[str, Any], start: int, end: int, align_to_words: bool = True) -> tuple[int, int]:
    """Character span in the context of tokens start..end of a window; with `align_to_words`, widened to the
    whole words they fall in (the tokenizer's words: runs without spaces, so a CJK sentence is one word)."""
    offsets = window["offsets"]
    if align_to_words:
        words, sequences = window["word_ids"], window["sequence_ids"]
        sequence = window["context_sequence"]
        start_word, end_word = words[start], words[end]
        if start_word is not None and end_word is not None:
            tokens = list(enumerate(zip(words, sequences, strict=True)))
            first = next(i for i, (w, s) in tokens if w == start_word and s == sequence)
            last = max(i for i, (w, s) in tokens if w == end_word and s == sequence)
            return offsets[first][0], offsets[last][1]
    return offsets[start][0], offsets[end][1]


def merge_answers(
    context: str,
    windows: Sequence[Mapping[str, Any]],
    logits: Sequence[tuple[np.ndarray, np.ndarray]],
    top_k: int = 1,
    max_answer_len: int = 15,
    handle_impossible_answer: bool = False,
    align_to_words: bool = True,
) -> list[dict[str, Any]]:
    """The `top_k` answers `{"score", "start", "end", "answer"}` for one context from its windows' (start, end)
    logits, best first. Spans whose text is the same (ignoring case) add their scores; each window offers its
    `2 * top_k + 10` best spans (more than top_k, since several spans can give one text)."""
    answers: list[dict[str, Any]] = []
    by_text: dict[str, dict[str, Any]] = {}
    null_score = 1e6
    for window, (start_logits, end_logits) in zip(windows, logits, strict=True):
        start, end, window_null = span_probabilities(start_logits, end_logits, window["answer_mask"])
        null_score = min(null_score, window_null)
        n_best = 2 * top_k + 10 if align_to_words else top_k
        for s, e, score in best_spans(start, end, window["answer_mask"], n_best, max_answer_len):
            first, last = answer_chars(window, s, e, align_to_words)
            text = context[first:last]
            if text.lower() in by_text:
                by_text[text.lower()]["score"] += score
            else:
                answer = {"score": score, "start": first, "end": last, "answer": text}
                by_text[text.lower()] = answer
                answers.append(answer)
    if handle_impossible_answer:
        answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
    return sorted(answers, key=lambda answer: answer["score"], reverse=True)[:top_k]


class QuestionAnsweringPipeline(Pipeline):
    """Answer questions from contexts of any length.

    >>> qa = pipeline("question-answering", model="path/to/xquad-model")  # doctest: +SKIP
    >>> qa(question="Où dort le chat ?", context="Le chat dort sur le canapé depuis ce matin.")  # doctest: +SKIP
    {'score': 0.87, 'start': 16, 'end': 26, 'answer': ' le canapé'}
    """

    task = "question-answering"
    heads = ("question_answering",)
    parameters = {
        "top_k": 1,
        "doc_stride": None,
        "max_answer_len": 15,
        "max_seq_len": None,
        "max_question_len": 64,
        "handle_impossible_answer": False,
        "align_to_words": True,
    }

    def _settle(self, given: dict[str, Any]) -> dict[str, Any]:
        params = super()._settle(given)
        params["top_k"] = check_positive_int("top_k", params["top_k"], self.task)
        params["max_answer_len"] = check_positive_int("max_answer_len", params["max_answer_len"], self.task)
        max_seq_len = params["max_seq_len"]
        if max_seq_len is None:  # Hugging Face's default, and never beyond the model's positions
            max_seq_len = min(self.tokenizer.model_max_length, 384, self.config.max_position_embeddings)
        params["max_seq_len"] = check_positive_int("max_seq_len", max_seq_len, self.task)
        stride = params["doc_stride"]
        if stride is None:
            stride = min(params["max_seq_len"] // 2, 128)
        params["doc_stride"] = check_positive_int("doc_stride", stride, self.task)
        if params["doc_stride"] > params["max_seq_len"]:
            raise ValueError(
                f"{self.task}: doc_stride ({params['doc_stride']}) is larger than max_seq_len ({params['max_seq_len']})"
            )
        return params

    def _split_inputs(self, inputs: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
        kind, items = self._examples(inputs, kwargs)
        # As Hugging Face: a list of one example answers like the example alone.
        return ("one", items) if kind == "many" and len(items) == 1 else (kind, items)

    def _examples(self, inputs: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
        question, context = kwargs.pop("question", None), kwargs.pop("context", None)
        if question is not None or context is not None:
            if inputs is not None:
                raise ValueError(f"{self.task}: give the inputs either positionally or as question=/context=, not both")
            if question is None or context is None:
                raise ValueError(f"{self.task}: question= and context= go together")
            if isinstance(question, str) and isinstance(context, str):
                return "one", [{"question": question, "context": context}]
            if isinstance(question, list) and isinstance(context, str):
                return "many", [{"question": q, "context": context} for q in question]
            if isinstance(question, list) and isinstance(context, list):
                if len(question) != len(context):
                    raise ValueError(
                        f"{self.task}: {len(question)} questions but {len(context)} contexts; give one context per "
                        "question, or one context for all"
                    )
                return "many", [{"question": q, "context": c} for q, c in zip(question, context, strict=True)]
            raise ValueError(
                f"{self.task}: question= and context= take strings or lists of strings, got "
                f"{type(question).__name__} and {type(context).__name__}"
            )
        if isinstance(inputs, tuple) and len(inputs) == 2 and all(isinstance(x, str) for x in inputs):
            return "one", [{"question": inputs[0], "context": inputs[1]}]
        return super()._split_inputs(inputs, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`qa(question=..., context=...)`, `qa({"question": ..., "context": ...})`, a list of such dicts, a
        generator of them, or `qa(question, context)`."""
        if len(args) == 2:
            return super().__call__(tuple(args), **kwargs)
        if len(args) > 2:
            raise TypeError(f"{self.task}: takes (question, context) or one input positionally, got {len(args)}")
        return super().__call__(*args, **kwargs)

    def _check_example(self, item: Any) -> tuple[str, str]:
        if not isinstance(item, Mapping) or "question" not in item or "context" not in item:
            raise ValueError(f'{self.task}: each input is a dict with keys "question" and "context", got {item!r:.120}')
        question = check_text(self.task, item["question"], "question")
        context = check_text(self.task, item["context"], "context")
        for name, text in (("question", question), ("context", context)):
            if not text:
                raise ValueError(f"{self.task}: the {name} is empty")
        return question, context

    def _features(self, items: list[Any], params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        examples = [self._check_example(item) for item in items]
        return qa_windows(
            self.tokenizer,
            [question for question, _ in examples],
            [context for _, context in examples],
            params["max_seq_len"],
            params["doc_stride"],
            question_first=self.tokenizer.padding_side == "right",
        )

    def _keep(self, feature: Mapping[str, Any], outputs: Mapping[str, Any], row: int, params: dict) -> dict:
        length = len(feature["input_ids"])
        return {
            "start_logits": np.asarray(outputs["start_logits"][row, :length]),
            "end_logits": np.asarray(outputs["end_logits"][row, :length]),
        }

    def _postprocess(self, item: Any, features: Sequence[Mapping], kept: Sequence[Mapping], params: dict) -> Any:
        answers = merge_answers(
            item["context"],
            features,
            [(outputs["start_logits"], outputs["end_logits"]) for outputs in kept],
            top_k=params["top_k"],
            max_answer_len=params["max_answer_len"],
            handle_impossible_answer=params["handle_impossible_answer"],
            align_to_words=params["align_to_words"],
        )
        # As Hugging Face: a single answer is the dict itself.
        return answers[0] if len(answers) == 1 else answers

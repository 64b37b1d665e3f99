"""The metrics XTREME reports, for the recipes and for anyone scoring predictions.

- extractive QA (SQuAD, XQuAD, MLQA): exact match and token F1 after normalising both answers: lowercase, no
  punctuation, no articles, single spaces. `lang=None` is SQuAD v1.1's normalisation (ASCII punctuation, English
  articles), which XTREME uses for XQuAD; a language code uses MLQA's rules for it (every Unicode punctuation
  character, the language's articles, Chinese split into characters since it writes no spaces);
- NER / POS: entity-level precision, recall and F1 with `seqeval` (optional: `pip install seqeval`);
- classification: accuracy.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Articles each language's normalisation removes (MLQA's evaluation rules).
ARTICLES: dict[str | None, str] = {
    None: r"\b(a|an|the)\b",
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "ar": r"\sال^|ال",
}
_SPLIT_CHARACTERS = ("zh",)  # languages scored per character


_ASCII_PUNCTUATION = frozenset(string.punctuation)


def _is_punctuation(character: str, lang: str | None) -> bool:
    if character in _ASCII_PUNCTUATION:
        return True
    return lang is not None and unicodedata.category(character).startswith("P")


def _is_cjk(character: str) -> bool:
    return unicodedata.category(character) == "Lo" and "CJK" in unicodedata.name(character, "")


def answer_tokens(text: str, lang: str | None = None) -> list[str]:
    """The tokens of a normalised answer (see the module docstring)."""
    text = "".join(character for character in text.lower() if not _is_punctuation(character, lang))
    articles = ARTICLES.get(lang)
    if articles is not None:
        text = re.sub(articles, " ", text)
    if lang in _SPLIT_CHARACTERS:
        tokens: list[str] = []
        for word in text.split():
            run = ""
            for character in word:
                if _is_cjk(character):
                    tokens += [run] if run else []
                    tokens.append(character)
                    run = ""
                else:
                    run += character
            tokens += [run] if run else []
        return tokens
    return text.split()


def normalize_answer(text: str, lang: str | None = None) -> str:
    """An answer as the metrics compare it: lowercase, no punctuation, no articles, single spaces."""
    return " ".join(answer_tokens(text, lang))


def exact_match(prediction: str, truth: str, lang: str | None = None) -> float:
    return float(answer_tokens(prediction, lang) == answer_tokens(truth, lang))


def f1(prediction: str, truth: str, lang: str | None = None) -> float:
    """Token F1 between two answers after normalisation (1.0 when both normalise to nothing)."""
    predicted, true = answer_tokens(prediction, lang), answer_tokens(truth, lang)
    if not predicted or not true:
        return float(predicted == true)
    common = sum((Counter(predicted) & Counter(true)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(true)
    return 2 * precision * recall / (precision + recall)


def squad_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], lang: str | None = None
) -> dict[str, float]:
    """{"exact_match", "f1", "count"} in percent over the questions of `references` (id -> gold answers); each
    question scores its best match among its gold answers. A question without a prediction scores 0."""
    if not references:
        raise ValueError("squad_scores: no references")
    total_em = total_f1 = 0.0
    for question_id, truths in references.items():
        truths = [truths] if isinstance(truths, str) else list(truths)
        if not truths:
            raise ValueError(f"squad_scores: question {question_id!r} has no gold answer")
        prediction = predictions.get(question_id)
        if prediction is None:
            continue
        total_em += max(exact_match(prediction, truth, lang) for truth in truths)
        total_f1 += max(f1(prediction, truth, lang) for truth in truths)
    count = len(references)
    return {"exact_match": 100 * total_em / count, "f1": 100 * total_f1 / count, "count": count}


def entity_scores(true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level {"precision", "recall", "f1"} of IOB2 tag sequences (one list of tags per sentence), with
    seqeval's default (CoNLL) scoring."""
    try:
        from seqeval.metrics import f1_score, precision_score, recall_score
    except ImportError:
        raise ImportError("entity_scores needs seqeval: pip install 'rembert[xtreme]' (or seqeval)") from None
    if len(true_tags) != len(predicted_tags):
        raise ValueError(f"entity_scores: {len(true_tags)} true sentences but {len(predicted_tags)} predicted")
    for index, (true, predicted) in enumerate(zip(true_tags, predicted_tags, strict=True)):
        if len(true) != len(predicted):
            counts = f"{len(true)} true tags but {len(predicted)} predicted"
            raise ValueError(f"entity_scores: sentence {index} has {counts}")
    true_tags, predicted_tags = [list(t) for t in true_tags], [list(p) for p in predicted_tags]
    return {
        "precision": float(precision_score(true_tags, predicted_tags)),
        "recall": float(recall_score(true_tags, predicted_tags)),
        "f1": float(f1_score(true_tags, predicted_tags)),
    }


def accuracy(true_labels: Iterable[Any], predicted_labels: Iterable[Any]) -> float:
    true_labels, predicted_labels = list(true_labels), list(predicted_labels)
    if len(true_labels) != len(predicted_labels):
        raise ValueError(f"accuracy: {len(true_labels)} true labels but {len(predicted_labels)} predicted")
    if not true_labels:
        raise ValueError("accuracy: no labels")
    return sum(t == p for t, p in zip(true_labels, predicted_labels, strict=True)) / len(true_labels)

"""text-classification: labels and scores for texts and pairs of texts, as Hugging Face's TextClassificationPipeline
gives them (`{"label", "score"}`, with its return shapes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import Pipeline, check_positive_int, check_text, sigmoid, softmax

FUNCTIONS = ("softmax", "sigmoid", "none")
_PAIR_KEYS = {"text", "text_pair"}
_TOP_K_NOT_GIVEN = ""  # Hugging Face's sentinel: top_k=None means "every label"


def default_function(config: Any) -> str:
    """The function that turns logits into scores for this model, as Hugging Face chooses it: none for
    regression, sigmoid for multi-label or a single label, softmax otherwise."""
    if config.problem_type == "regression":
        return "none"
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def scores_of(logits: np.ndarray, function: str) -> np.ndarray:
    if function == "softmax":
        return softmax(logits)
    if function == "sigmoid":
        return sigmoid(logits)
    return np.asarray(logits, dtype=np.float64)


def ranked_labels(scores: np.ndarray, id2label: Mapping[int, str], top_k: int | None) -> list[dict[str, Any]]:
    """Every label with its score, best first (label order among equal scores), cut to top_k."""
    order = np.argsort(-scores, kind="stable")
    ranked = [{"label": id2label[int(i)], "score": float(scores[i])} for i in order]
    return ranked if top_k is None else ranked[:top_k]


class TextClassificationPipeline(Pipeline):
    """Classify texts, or pairs given as `{"text": ..., "text_pair": ...}`.

    >>> classifier = pipeline("text-classification", model="path/to/xnli-model")  # doctest: +SKIP
    >>> classifier({"text": "Il pleut.", "text_pair": "Es regnet."})  # doctest: +SKIP
    {'label': 'entailment', 'score': 0.93}
    """

    task = "text-classification"
    heads = ("sequence_classification",)
    parameters = {
        "top_k": _TOP_K_NOT_GIVEN,
        "function_to_apply": None,
        "truncation": None,
        "max_length": None,
        "tokenizer_kwargs": None,
    }

    def _settle(self, given: dict[str, Any]) -> dict[str, Any]:
        params = super()._settle(given)
        # Without top_k, each text gets its best label as one dict (Hugging Face's original form).
        params["legacy"] = "top_k" not in given
        if not params["legacy"] and params["top_k"] is not None:
            params["top_k"] = check_positive_int("top_k", params["top_k"], self.task)
        function = params["function_to_apply"]
        if function is None or (isinstance(function, str) and function.lower() == "default"):
            function = default_function(self.config)
        elif not isinstance(function, str) or function.lower() not in FUNCTIONS:
            raise ValueError(f"{self.task}: function_to_apply must be one of {', '.join(FUNCTIONS)}, got {function!r}")
        params["function"] = function.lower()
        tokenizer_kwargs = dict(params["tokenizer_kwargs"] or {})
        for name in ("truncation", "max_length"):
            if params[name] is not None:
                tokenizer_kwargs[name] = params[name]
        if tokenizer_kwargs.get("truncation") and tokenizer_kwargs.get("max_length") is None:
            # truncate to what the model can read, also when the tokenizer was saved without a limit
            tokenizer_kwargs["max_length"] = min(self.tokenizer.model_max_length, self.config.max_position_embeddings)
        params["tokenizer_call"] = tokenizer_kwargs
        return params

    def _shape(self, results: list[Any], kind: str, inputs: Any, params: dict, kwargs: dict) -> Any:
        if kind != "one":
            return results
        # As Hugging Face: one text without top_k gives a list holding its dict; a pair gives the dict itself.
        return [results[0]] if isinstance(inputs, str) and params["legacy"] else results[0]

    def _features(self, items: list[Any], params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        firsts, seconds = [], []
        for item in items:
            if isinstance(item, Mapping):
                if "text" not in item or not set(item) <= _PAIR_KEYS:
                    raise ValueError(
                        f'{self.task}: a pair of texts is a dict with keys "text" and "text_pair", got keys '
                        f"{sorted(item)}"
                    )
                firsts.append(check_text(self.task, item["text"], "text"))
                second = item.get("text_pair")
                seconds.append(None if second is None else check_text(self.task, second, "text_pair"))
            elif isinstance(item, (list, tuple)):
                raise ValueError(
                    f'{self.task}: to classify a pair of texts, pass {{"text": ..., "text_pair": ...}}; got a '
                    f"{type(item).__name__} of {len(item)} items"
                )
            else:
                firsts.append(check_text(self.task, item))
                seconds.append(None)
        singles = [i for i, second in enumerate(seconds) if second is None]
        pairs = [i for i, second in enumerate(seconds) if second is not None]
        features: list[list[dict[str, Any]]] = [[] for _ in items]
        call = params["tokenizer_call"]
        for rows, encoded in (
            (singles, self.tokenizer([firsts[i] for i in singles], **call) if singles else None),
            (pairs, self.tokenizer([firsts[i] for i in pairs], [seconds[i] for i in pairs], **call) if pairs else None),
        ):
            for row, index in enumerate(rows):
                features[index] = [
                    {"input_ids": encoded["input_ids"][row], "token_type_ids": encoded["token_type_ids"][row]}
                ]
        return features

    def _keep(self, feature: Mapping[str, Any], outputs: Mapping[str, Any], row: int, params: dict) -> dict:
        return {"logits": np.asarray(outputs["logits"][row])}

    def _postprocess(self, item: Any, features: Sequence[Mapping], kept: Sequence[Mapping], params: dict) -> Any:
        scores = scores_of(kept[0]["logits"], params["function"])
        if params["legacy"]:
            best = int(np.argmax(scores))
            return {"label": self.config.id2label[best], "score": float(scores[best])}
        return ranked_labels(scores, self.config.id2label, params["top_k"])

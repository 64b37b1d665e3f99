"""feature-extraction: the hidden states of texts (Hugging Face's FeatureExtractionPipeline), and sentence embeddings
pooled from them (`pooling="cls"` or `"mean"`, any layer, L2-normalised on request).

`sentence-embeddings` is the same pipeline with retrieval defaults (mean pooling, normalised, numpy arrays; a list
of texts gives one [texts, hidden] matrix), ready for `rembert_tasks.retrieval`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import Pipeline, check_text

POOLINGS = ("cls", "mean")


def pool(hidden: np.ndarray, attention_mask: np.ndarray | None, pooling: str) -> np.ndarray:
    """[..., length, hidden] -> [..., hidden]: the first token's vector (`"cls"`) or the mean over attended
    tokens (`"mean"`, attention_mask 1; special tokens included, padding not)."""
    hidden = np.asarray(hidden, dtype=np.float32)
    if pooling == "cls":
        return hidden[..., 0, :]
    if pooling != "mean":
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if attention_mask is None:
        return hidden.mean(axis=-2)
    weights = np.asarray(attention_mask, dtype=np.float32)[..., None]
    return (hidden * weights).sum(axis=-2) / np.maximum(weights.sum(axis=-2), 1.0)


def l2_normalize(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Each vector (last axis) divided by its Euclidean norm (a zero vector stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), eps)


class FeatureExtractionPipeline(Pipeline):
    """Hidden states of texts, or one pooled vector per text.

    >>> extractor = pipeline("feature-extraction", model="path/to/rembert")  # doctest: +SKIP
    >>> len(extractor("Hallo Welt")[0])  # tokens of the text  # doctest: +SKIP
    5
    >>> embed = pipeline("feature-extraction", model="path/to/model", pooling="mean", normalize=True)  # doctest: +SKIP
    """

    task = "feature-extraction"
    heads = ("base",)  # any head's backbone also serves: its hidden states are read
    parameters = {
        "pooling": None,
        "normalize": False,
        "layer": None,
        "return_tensors": False,
        "truncation": None,
        "tokenize_kwargs": None,
    }

    def _settle(self, given: dict[str, Any]) -> dict[str, Any]:
        params = super()._settle(given)
        if params["pooling"] is not None and params["pooling"] not in POOLINGS:
            choices = ", ".join(POOLINGS)
            raise ValueError(f"{self.task}: pooling must be one of {choices} or None, got {params['pooling']!r}")
        if params["normalize"] and params["pooling"] is None:
            raise ValueError(f"{self.task}: normalize=True needs pooling (one vector per text)")
        layers = self.config.num_hidden_layers + 1  # the embeddings, then each layer
        layer = params["layer"]
        is_index = isinstance(layer, int) and not isinstance(layer, bool)
        if layer is not None and (not is_index or not -layers <= layer < layers):
            raise ValueError(
                f"{self.task}: layer must be an index into the {layers} hidden states (0 = embeddings, -1 = last), "
                f"got {layer!r}"
            )
        params["layer"] = None if layer in (-1, layers - 1) else layer
        call = dict(params["tokenize_kwargs"] or {})
        if params["truncation"] is not None:
            if "truncation" in call:
                raise ValueError(f"{self.task}: truncation given twice (as an argument and in tokenize_kwargs)")
            call["truncation"] = params["truncation"]
        if call.get("truncation") and call.get("max_length") is None:
            # truncate to what the model can read, also when the tokenizer was saved without a limit
            call["max_length"] = min(self.tokenizer.model_max_length, self.config.max_position_embeddings)
        params["tokenizer_call"] = call
        return params

    def _wants_hidden_states(self, params: dict[str, Any]) -> bool:
        # A head model has no last_hidden_state field: its hidden states are read instead.
        return params["layer"] is not None or getattr(self.model, "head", None) != "base"

    def _features(self, items: list[Any], params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        texts = [check_text(self.task, item) for item in items]
        encoded = self.tokenizer(texts, **params["tokenizer_call"])
        return [
            [{"input_ids": encoded["input_ids"][i], "token_type_ids": encoded["token_type_ids"][i]}]
            for i in range(len(texts))
        ]

    def _keep(self, feature: Mapping[str, Any], outputs: Mapping[str, Any], row: int, params: dict) -> dict:
        layer = params["layer"]
        if layer is not None:
            hidden = outputs["hidden_states"][layer]
        elif "last_hidden_state" in outputs:
            hidden = outputs["last_hidden_state"]
        else:
            hidden = outputs["hidden_states"][-1]
        states = np.asarray(hidden[row, : len(feature["input_ids"])], dtype=np.float32)
        if params["pooling"] is None:
            return {"states": states}
        vector = pool(states, None, params["pooling"])  # the row's own tokens: all attended
        return {"states": l2_normalize(vector) if params["normalize"] else vector}

    def _postprocess(self, item: Any, features: Sequence[Mapping], kept: Sequence[Mapping], params: dict) -> Any:
        states = kept[0]["states"]
        if params["pooling"] is None:
            states = states[None]  # [1, length, hidden], as Hugging Face keeps the batch axis
        return states if params["return_tensors"] else states.tolist()


class SentenceEmbeddingPipeline(FeatureExtractionPipeline):
    """One L2-normalised mean-pooled vector per text; a list of texts gives a [texts, hidden] numpy matrix.

    >>> embed = pipeline("sentence-embeddings", model="path/to/rembert")  # doctest: +SKIP
    >>> embed(["Guten Morgen", "Good morning"]).shape  # doctest: +SKIP
    (2, 1152)
    """

    task = "sentence-embeddings"
    parameters = {**FeatureExtractionPipeline.parameters, "pooling": "mean", "normalize": True, "return_tensors": True}

    def _settle(self, given: dict[str, Any]) -> dict[str, Any]:
        params = super()._settle(given)
        if params["pooling"] is None:
            raise ValueError(f"{self.task}: pooling must be one of {', '.join(POOLINGS)}")
        return params

    def _shape(self, results: list[Any], kind: str, inputs: Any, params: dict, kwargs: dict) -> Any:
        if kind == "one":
            return results[0]
        if not params["return_tensors"]:
            return results
        return np.stack(results) if results else np.zeros((0, self.config.hidden_size), np.float32)

"""fill-mask: the most likely tokens for each mask of a text, as Hugging Face's FillMaskPipeline gives them.

For each text, each `[MASK]` gets its `top_k` candidates (`{"score", "token", "token_str", "sequence"}`), the
sequence being the text decoded with that candidate in place. With `targets`, only those tokens are scored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import Pipeline, check_positive_int, check_text, softmax

logger = logging.getLogger("rembert")


def target_ids(tokenizer: Any, targets: str | Sequence[str], task: str = "fill-mask") -> list[int]:
    """The ids of `targets`: a token of the vocabulary, else the first token the tokenizer makes of it (logged)."""
    if isinstance(targets, str):
        targets = [targets]
    vocabulary = tokenizer.get_vocab()
    ids: list[int] = []
    for target in targets:
        check_text(task, target, "target")
        token_id = vocabulary.get(target)
        if token_id is None:
            pieces = tokenizer(target, add_special_tokens=False)["input_ids"]
            if not pieces:
                logger.warning("%s: target %r gives no token; ignored", task, target)
                continue
            token_id = pieces[0]
            logger.warning(
                "%s: target %r is not in the vocabulary; scoring its first token %r instead",
                task,
                target,
                tokenizer.convert_ids_to_tokens(token_id),
            )
        if token_id not in ids:
            ids.append(int(token_id))
    if not ids:
        raise ValueError(f"{task}: none of the targets {list(targets)!r} is a token")
    return ids


def top_predictions(
    mask_logits: np.ndarray, top_k: int, targets: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, token ids), each [masks, k]: the k most likely tokens at each mask, best first.

    Probabilities are a softmax over the whole vocabulary, then restricted to `targets` (so a target's score is
    its probability among all tokens, as in Hugging Face); k is at most the number of targets.
    """
    probabilities = softmax(mask_logits)
    candidates = np.arange(probabilities.shape[-1]) if targets is None else np.asarray(targets)
    probabilities = probabilities[:, candidates]
    k = min(top_k, len(candidates))
    best = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return np.take_along_axis(probabilities, best, axis=-1), candidates[best]


class FillMaskPipeline(Pipeline):
    """Candidates for each mask token of a text.

    >>> unmasker = pipeline("fill-mask", model="path/to/rembert")  # doctest: +SKIP
    >>> unmasker("Paris est la [MASK] de la France.", top_k=2)  # doctest: +SKIP
    [{'score': 0.61, 'token': 1234, 'token_str': 'capitale', 'sequence': 'Paris est la capitale de la France.'}, ...]
    """

    task = "fill-mask"
    heads = ("masked_lm",)
    parameters = {"top_k": 5, "targets": None, "tokenizer_kwargs": None}

    def _settle(self, given: dict[str, Any]) -> dict[str, Any]:
        params = super()._settle(given)
        if self.tokenizer.mask_token_id is None:
            raise ValueError(f"{self.task}: the tokenizer has no mask token")
        params["top_k"] = check_positive_int("top_k", params["top_k"], self.task)
        if params["targets"] is not None:
            params["target_ids"] = target_ids(self.tokenizer, params["targets"], self.task)
        if params["tokenizer_kwargs"] is not None and not isinstance(params["tokenizer_kwargs"], Mapping):
            raise ValueError(f"{self.task}: tokenizer_kwargs must be a dict, got {params['tokenizer_kwargs']!r}")
        return params

    def _shape(self, results: list[Any], kind: str, inputs: Any, params: dict, kwargs: dict) -> Any:
        # As Hugging Face: a list of one text answers like the text alone.
        return results[0] if kind == "one" or len(results) == 1 else results

    def _features(self, items: list[Any], params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        texts = [check_text(self.task, item) for item in items]
        encoded = self.tokenizer(texts, **(params["tokenizer_kwargs"] or {}))
        mask_id = self.tokenizer.mask_token_id
        features = []
        for index, text in enumerate(texts):
            input_ids = list(encoded["input_ids"][index])
            masks = [position for position, token in enumerate(input_ids) if token == mask_id]
            if not masks:
                raise ValueError(f"{self.task}: no mask token ({self.tokenizer.mask_token}) in the input {text!r:.120}")
            feature = {"input_ids": input_ids, "masks": masks}
            if "token_type_ids" in encoded:
                feature["token_type_ids"] = list(encoded["token_type_ids"][index])
            features.append([feature])
        return features

    def _keep(self, feature: Mapping[str, Any], outputs: Mapping[str, Any], row: int, params: dict) -> dict:
        # Only the mask rows of [length, vocab]: the rest would be most of the memory and is never read.
        return {"logits": np.asarray(outputs["logits"][row, feature["masks"]])}

    def _postprocess(self, item: Any, features: Sequence[Mapping], kept: Sequence[Mapping], params: dict) -> Any:
        feature, logits = features[0], kept[0]["logits"]
        scores, tokens = top_predictions(logits, params["top_k"], params.get("target_ids"))
        input_ids = np.asarray(feature["input_ids"])
        single = len(feature["masks"]) == 1
        pad_token_id = self.tokenizer.pad_token_id
        results = []
        for position, mask_scores, mask_tokens in zip(feature["masks"], scores, tokens, strict=True):
            candidates = []
            for score, token in zip(mask_scores.tolist(), mask_tokens.tolist(), strict=True):
                filled = input_ids.copy()
                filled[position] = token
                filled = filled[filled != pad_token_id] if pad_token_id is not None else filled
                # With several masks the others stay visible, so special tokens are kept in the sequence.
                sequence = self.tokenizer.decode(filled.tolist(), skip_special_tokens=single)
                candidates.append(
                    {"score": score, "token": token, "token_str": self.tokenizer.decode([token]), "sequence": sequence}
                )
            results.append(candidates)
        return results[0] if single else results

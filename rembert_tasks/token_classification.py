"""token-classification (NER, POS): a label per token, or entities grouped from them, with character offsets in
the original text, as Hugging Face's TokenClassificationPipeline gives them.

The grouping works on plain records, so it is unit-testable without a model:

- a *token* record is `{"word", "scores", "start", "end", "index", "is_subword"}` (`scores` over the labels);
- `aggregate(tokens, strategy, id2label)` turns them into entities: `"none"` one per token
  (`{"entity", "score", "index", "word", "start", "end"}`), `"simple"` adjacent tokens of one tag merged, and
  `"first"` / `"average"` / `"max"` first make each word agree on one label (its first token's, the average of
  its tokens' scores, or its most confident token's) and then merge words (`{"entity_group", "score", "word",
  "start", "end"}`).

A token continues the word before it when it neither starts the text nor follows or begins with a space (the
rule Hugging Face applies to sentencepiece tokenizers, whose pieces carry no word marker it can read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .base import Pipeline, check_positive_int, check_text, softmax

STRATEGIES = ("none", "simple", "first", "average", "max")


def split_tag(label: str) -> tuple[str, str]:
    """("B" or "I", entity type) of a label; a label without a B-/I- prefix continues ("I") its own type."""
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


def is_subword(sentence: str, start: int) -> bool:
    """A token starting at `start` continues a word: not at the text's start, no space just before or at it."""
    return start > 0 and " " not in sentence[start - 1 : start + 1]


def _token_entities(tokens: Sequence[Mapping[str, Any]], id2label: Mapping[int, str]) -> list[dict[str, Any]]:
    entities = []
    for token in tokens:
        best = int(np.argmax(token["scores"]))
        entities.append(
            {
                "entity": id2label[best],
                "score": float(token["scores"][best]),
                "index": token["index"],
                "word": token["word"],
                "start": token["start"],
                "end": token["end"],
            }
        )
    return entities


def _word_entity(
    tokens: Sequence[Mapping[str, Any]], strategy: str, id2label: Mapping[int, str], join: Callable
) -> dict[str, Any]:
    """One entity for the tokens of one word, labelled as `strategy` says."""
    if strategy == "first":
        scores = tokens[0]["scores"]
    elif strategy == "max":
        scores = max(tokens, key=lambda token: token["scores"].max())["scores"]
    else:  # average
        scores = np.nanmean(np.stack([token["scores"] for token in tokens]), axis=0)
    best = int(np.argmax(scores))
    return {
        "entity": id2label[best],
        "score": float(scores[best]),
        "word": join([token["word"] for token in tokens]),
        "start": tokens[0]["start"],
        "end": tokens[-1]["end"],
    }


def _words(tokens: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    words: list[list[Mapping[str, Any]]] = []
    for token in tokens:
        if words and token["is_subword"]:
            words[-1].append(token)
        else:
            words.append([token])
    return words


def _group(entities: Sequence[Mapping[str, Any]], join: Callable) -> dict[str, Any]:
    return {
        "entity_group": entities[0]["entity"].split("-", 1)[-1],
        "score": float(np.nanmean([entity["score"] for entity in entities])),
        "word": join([entity["word"] for entity in entities]),
        "start": entities[0]["start"],
        "end": entities[-1]["end"],
    }


def group_entities(entities: Sequence[Mapping[str, Any]], join: Callable) -> list[dict[str, Any]]:
    """Merge adjacent entities of one type; a B- label always starts a new group."""
    groups, current = [], []
    for entity in entities:
        if current:
            position, tag = split_tag(entity["entity"])
            _, last_tag = split_tag(current[-1]["entity"])
            if tag != last_tag or position == "B":
                groups.append(_group(current, join))
                current = []
        current.append(entity)
    if current:
        groups.append(_group(current, join))
    return groups


def aggregate(
    tokens: Sequence[Mapping[str, Any]], strategy: str, id2label: Mapping[int, str], join: Callable = "".join
) -> list[dict[str, Any]]:
    """Entities from token records (see the module docstring); `join` makes a word from token strings."""
    if strategy not in STRATEGIES:
        raise ValueError(f"aggregation_strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy in ("none", "simple"):
        entities = _token_entities(tokens, id2label)
        return entities if strategy == "none" else group_entities(entities, join)
    words = [_word_entity(word, strategy, id2label, join) for word in _words(tokens)]
    return group_entities(words, join)


def drop_overlaps(entities: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Entities found in overlapping windows: of entities that overlap, the longest (then most confident) stays."""
    if not entities:
        return []
    ordered = sorted(entities, key=lambda entity: entity["start"])
    kept, best = [], ordered[0]
    for entity in ordered:
        if best["start"] <= entity["start"] < best["end"]:
            length, best_length = entity["end"] - entity["start"], best["end"] - best["start"]
            if length > best_length or (length == best_length and entity["score"] > best["score"]):
                best = entity
        else:
            kept.append(best)
            best = entity
    kept.append(best)
    return kept


class TokenClassificationPipeline(Pipeline):
    """Label the tokens of texts and group them into entities.

    >>> ner = pipeline("ner", model="path/to/wikiann-model", aggregation_strategy="simple")  # doctest: +SKIP
    >>> ner("Angela Merkel besuchte São Paulo.")  # doctest: +SKIP
    [{'entity_group': 'PER', 'score': 0.98, 'word': 'Angela Merkel', 'start': 0, 'end': 13}, ...]
    """

    task = "token-classification"
    heads = ("token_classification",)
    parameters = {
        "aggregation_strategy": "none",
        "ignore_labels": None,
        "stride": None,
        "is_split_into_words": False,
        "delimiter": None,
    }

    def _settle(self, given: dict[str, Any]) -> dict[str, Any]:
        params = super()._settle(given)
        strategy = params["aggregation_strategy"]
        strategy = getattr(strategy, "value", strategy)  # Hugging Face's AggregationStrategy enum
        if not isinstance(strategy, str) or strategy.lower() not in STRATEGIES:
            choices = ", ".join(STRATEGIES)
            raise ValueError(f"{self.task}: aggregation_strategy must be one of {choices}, got {strategy!r}")
        params["aggregation_strategy"] = strategy.lower()
        ignore = params["ignore_labels"]
        if ignore is None:
            ignore = ["O"]
        if isinstance(ignore, str) or not all(isinstance(label, str) for label in ignore):
            raise ValueError(f"{self.task}: ignore_labels must be a list of labels, got {ignore!r}")
        params["ignore_labels"] = set(ignore)
        if params["stride"] is not None:
            params["stride"] = check_positive_int("stride", params["stride"], self.task)
            if params["aggregation_strategy"] == "none":
                raise ValueError(
                    f'{self.task}: stride (windows over long texts) needs an aggregation_strategy other than "none", '
                    "to join the entities found in overlapping windows"
                )
        if params["delimiter"] is None:
            params["delimiter"] = " "
        elif not isinstance(params["delimiter"], str):
            raise ValueError(f"{self.task}: delimiter must be a string, got {params['delimiter']!r}")
        params["max_length"] = min(self.tokenizer.model_max_length, self.config.max_position_embeddings)
        return params

    def _split_inputs(self, inputs: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
        # Pre-split words: a list of strings is one text (answered, as by Hugging Face, as a list of one result),
        # a list of lists is several.
        if kwargs.get("is_split_into_words", self._defaults.get("is_split_into_words")) and isinstance(inputs, list):
            if all(isinstance(word, str) for word in inputs):
                return "many", [inputs]
        return super()._split_inputs(inputs, kwargs)

    def _features(self, items: list[Any], params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        split = params["is_split_into_words"]
        sentences, word_starts = [], []
        for item in items:
            if split:
                if not isinstance(item, (list, tuple)) or not all(isinstance(word, str) for word in item):
                    raise ValueError(f"{self.task}: with is_split_into_words=True each input is a list of words")
                sentences.append(params["delimiter"].join(item))
                starts, position = [], 0
                for word in item:
                    starts.append(position)
                    position += len(word) + len(params["delimiter"])
                word_starts.append(starts)
            else:
                sentences.append(check_text(self.task, item))
        call: dict[str, Any] = dict(truncation=True, max_length=params["max_length"], return_special_tokens_mask=True)
        call["return_offsets_mapping"] = True
        if params["stride"] is not None:
            call.update(return_overflowing_tokens=True, stride=params["stride"])
        texts = [list(item) for item in items] if split else sentences
        encoded = self.tokenizer(texts, is_split_into_words=split, **call)
        rows = encoded["overflow_to_sample_mapping"] if params["stride"] is not None else range(len(items))
        features: list[list[dict[str, Any]]] = [[] for _ in items]
        for row, sample in enumerate(rows):
            offsets = [tuple(span) for span in encoded["offset_mapping"][row]]
            if split:  # offsets are within each word: move them into the joined sentence
                words = encoded.word_ids(row)
                offsets = [
                    span if word is None else (span[0] + word_starts[sample][word], span[1] + word_starts[sample][word])
                    for span, word in zip(offsets, words, strict=True)
                ]
            features[sample].append(
                {
                    "input_ids": encoded["input_ids"][row],
                    "token_type_ids": encoded["token_type_ids"][row],
                    "special_tokens_mask": encoded["special_tokens_mask"][row],
                    "offsets": offsets,
                    "sentence": sentences[sample],
                }
            )
        return features

    def _tokens(self, feature: Mapping[str, Any], scores: np.ndarray) -> list[dict[str, Any]]:
        """Token records of one window (special tokens left out)."""
        sentence = feature["sentence"]
        unk_token_id = self.tokenizer.unk_token_id
        strings = self.tokenizer.convert_ids_to_tokens(list(feature["input_ids"]))
        tokens = []
        specials = feature["special_tokens_mask"]
        for index, (token_id, special) in enumerate(zip(feature["input_ids"], specials, strict=True)):
            if special:
                continue
            start, end = feature["offsets"][index]
            word = strings[index]
            subword = is_subword(sentence, start)
            if token_id == unk_token_id:  # the text itself says more than "<unk>"
                word, subword = sentence[start:end], False
            record = {"word": word, "scores": scores[index], "start": start, "end": end, "index": index}
            tokens.append({**record, "is_subword": subword})
        return tokens

    def _postprocess(self, item: Any, features: Sequence[Mapping], kept: Sequence[Mapping], params: dict) -> Any:
        strategy, ignore = params["aggregation_strategy"], params["ignore_labels"]
        found = []
        for feature, outputs in zip(features, kept, strict=True):
            tokens = self._tokens(feature, softmax(outputs["logits"]))
            entities = aggregate(tokens, strategy, self.config.id2label, self.tokenizer.convert_tokens_to_string)
            found += [e for e in entities if e.get("entity", e.get("entity_group")) not in ignore]
        return drop_overlaps(found) if len(features) > 1 else found

"""pad() as Hugging Face's data collators use it: the same batches from our tokenizers as from theirs."""

from __future__ import annotations

import copy

import numpy as np
import pytest

LINES = ["Grüße aus Köln!", "東京は日本の首都です。", "A much longer sentence about the weather in Lisbon.", "ok"]


def _same(ours, theirs) -> None:
    assert list(ours.keys()) == list(theirs.keys())
    for key in theirs:
        mine, want = ours[key], theirs[key]
        if isinstance(want, list):
            assert mine == want, key
        else:
            assert type(mine) is type(want), key
            assert mine.dtype == want.dtype, key
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(want), err_msg=key)


@pytest.fixture(scope="module")
def features(trio):
    """Features as a datasets.map() over the tokenizer leaves them: lists, plus labels of every kind."""
    hf = trio[2]
    encoded = hf(LINES, return_special_tokens_mask=True)
    rows = []
    for index in range(len(LINES)):
        row = {key: value[index] for key, value in encoded.items()}
        row["label"] = index % 2
        row["float_label"] = index / 4
        row["token_labels"] = [index % 3] * len(row["input_ids"])
        rows.append(row)
    return rows


@pytest.mark.parametrize("return_tensors", ["pt", "tf", "np"])
@pytest.mark.parametrize("pad_to_multiple_of", [None, 8])
def test_data_collator_with_padding(trio, features, return_tensors, pad_to_multiple_of):
    from transformers import DataCollatorWithPadding

    slow, fast, hf = trio
    batch = [{k: v for k, v in row.items() if k not in ("token_labels", "special_tokens_mask")} for row in features]
    options = dict(pad_to_multiple_of=pad_to_multiple_of, return_tensors=return_tensors)
    want = DataCollatorWithPadding(hf, **options)(batch)
    assert "labels" in want
    for ours in (slow, fast):
        _same(DataCollatorWithPadding(ours, **options)(batch), want)


@pytest.mark.parametrize("return_tensors", ["pt", "tf", "np"])
def test_data_collator_for_token_classification(trio, features, return_tensors):
    from transformers import DataCollatorForTokenClassification

    slow, fast, hf = trio
    batch = [{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"], "labels": r["token_labels"]}
             for r in features]  # fmt: skip
    want = DataCollatorForTokenClassification(hf, pad_to_multiple_of=8, return_tensors=return_tensors)(batch)
    for ours in (slow, fast):
        got = DataCollatorForTokenClassification(ours, pad_to_multiple_of=8, return_tensors=return_tensors)(batch)
        _same(got, want)


@pytest.mark.parametrize("with_special_mask", [True, False])
def test_data_collator_for_language_modeling(trio, features, with_special_mask):
    from transformers import DataCollatorForLanguageModeling

    slow, fast, hf = trio
    keep = {"input_ids", "token_type_ids", "attention_mask"} | ({"special_tokens_mask"} if with_special_mask else set())
    batch = [{k: v for k, v in row.items() if k in keep} for row in features]
    want = DataCollatorForLanguageModeling(hf, mlm_probability=0.4, seed=3, pad_to_multiple_of=4)(batch)
    for ours in (slow, fast):
        got = DataCollatorForLanguageModeling(ours, mlm_probability=0.4, seed=3, pad_to_multiple_of=4)(batch)
        _same(got, want)
    ids_only = [row["input_ids"] for row in features]  # lists of ids: the collator pads them itself
    want = DataCollatorForLanguageModeling(hf, seed=5)(ids_only)
    for ours in (slow, fast):
        _same(DataCollatorForLanguageModeling(ours, seed=5)(ids_only), want)


def test_pad_forms(trio, features):
    slow, fast, hf = trio
    plain = [{"input_ids": row["input_ids"], "label": row["label"]} for row in features]
    columns = {"input_ids": [row["input_ids"] for row in features], "label": [row["label"] for row in features]}
    calls = [
        (plain, {}),
        (plain, dict(padding="max_length", max_length=24, padding_side="left")),
        (plain, dict(padding=False)),
        (columns, dict(pad_to_multiple_of=5)),
        (plain[0], {}),
        (plain, dict(return_attention_mask=False)),
    ]
    for inputs, options in calls:
        want = hf.pad(copy.deepcopy(inputs), **options)  # Hugging Face's pad() may add keys to its input
        for ours in (slow, fast):
            assert dict(ours.pad(inputs, **options)) == dict(want), options
    tensors = [{"input_ids": np.array(row["input_ids"]), "label": row["label"]} for row in features]
    for ours in (slow, fast):
        _same(ours.pad(tensors), hf.pad(tensors))
        flat = [{k: v for k, v in row.items() if k != "token_labels"} for row in features]
        _same(ours.pad(flat, return_tensors="pt"), hf.pad(flat, return_tensors="pt"))
        # Nothing to pad (Hugging Face raises a KeyError here).
        assert dict(ours.pad({"input_ids": []}, return_attention_mask=True)) == {"input_ids": [], "attention_mask": []}


def test_pad_errors(trio):
    slow, fast, _ = trio
    for ours in (slow, fast):
        with pytest.raises(ValueError, match="input_ids"):
            ours.pad([{"labels": [1, 2]}])
        with pytest.raises(ValueError, match="empty list"):
            ours.pad([])
        with pytest.raises(ValueError, match=r"feature 1 has no \['label'\]"):
            ours.pad([{"input_ids": [2, 3], "label": 1}, {"input_ids": [2, 3]}])
        with pytest.raises(ValueError, match="'token_labels'"):
            ours.pad([{"input_ids": [2, 3], "token_labels": [1, 1]}, {"input_ids": [2], "token_labels": [1]}],
                     return_tensors="np")  # fmt: skip

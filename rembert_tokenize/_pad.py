"""``pad()``: padding features that were encoded earlier, as Hugging Face's data collators call it.

Collators hand over a list of feature dicts (``input_ids`` plus whatever the dataset carries: a scalar
``label``, per-token ``labels``, ``special_tokens_mask``, ...), or one dict of lists. Only the fields the
tokenizer makes are padded (``input_ids``, ``attention_mask``, ``token_type_ids``,
``special_tokens_mask``); every other field is passed through untouched, row by row, and converted to
tensors with the rest when asked.

Example:
    >>> features = [{"input_ids": [2, 7, 3], "label": 1}, {"input_ids": [2, 3], "label": 0}]
    >>> padded = pad_features(features, PadValues(0, 0, "right", ("input_ids", "attention_mask")))
    >>> padded["input_ids"], padded["attention_mask"], padded["label"]
    ([[2, 7, 3], [2, 3, 0]], [[1, 1, 1], [1, 1, 0]], [1, 0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rembert_tokenize import _batch
from rembert_tokenize._batch import BatchOptions
from rembert_tokenize.encoding import BatchEncoding


@dataclass(frozen=True)
class PadValues:
    """What a tokenizer pads with: its pad id, pad type id, default side and model input names."""

    pad_id: int | None
    pad_type_id: int
    side: str
    model_input_names: Sequence[str]
    model_max_length: int = _batch.VERY_LARGE_INTEGER


def pad_features(
    encoded_inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    values: PadValues,
    padding: bool | str = True,
    max_length: int | None = None,
    pad_to_multiple_of: int | None = None,
    padding_side: str | None = None,
    return_attention_mask: bool | None = None,
    return_tensors: str | None = None,
) -> BatchEncoding:
    """Pad one encoded example or a batch of them (see the module docstring)."""
    columns = _columns(encoded_inputs)
    main = values.model_input_names[0]
    if main not in columns:
        raise ValueError(f"pad() needs {main!r} in the features, got the keys {list(columns)}")
    if return_attention_mask is None:
        return_attention_mask = "attention_mask" in values.model_input_names
    required = columns[main]
    if required is None or (hasattr(required, "__len__") and len(required) == 0):
        if return_attention_mask:
            columns["attention_mask"] = []
        return BatchEncoding(columns)
    kind, columns = _to_python(columns, main)
    if return_tensors is None:
        return_tensors = kind
    options = BatchOptions.resolve(padding, None, max_length, values.model_max_length, pad_to_multiple_of)
    if options.padding != "do_not_pad" and values.pad_id is None:
        raise ValueError("padding needs a pad token: set tokenizer.pad_token, or add one with add_special_tokens")
    side = padding_side or values.side
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
    required = columns[main]
    if not isinstance(required[0], (list, tuple)):
        rows = {key: [value] for key, value in columns.items()}
        padded = _pad_rows(rows, main, values, options, side, return_attention_mask)
        return BatchEncoding({key: value[0] for key, value in padded.items()}, tensor_type=return_tensors)
    size = len(required)
    for key, value in columns.items():
        if not isinstance(value, (list, tuple)) or len(value) != size:
            raise ValueError(f"pad(): the field {key!r} does not have one entry per example ({size})")
    padded = _pad_rows(columns, main, values, options, side, return_attention_mask)
    return BatchEncoding(padded, tensor_type=return_tensors)


def _columns(encoded_inputs) -> dict[str, Any]:
    """A dict of fields: given as is, or gathered from a list of per-example dicts."""
    if isinstance(encoded_inputs, Mapping):
        return dict(encoded_inputs)
    if not isinstance(encoded_inputs, (list, tuple)):
        raise TypeError(f"pad() takes a dict of fields or a list of dicts, got {type(encoded_inputs).__name__}")
    if not encoded_inputs:
        raise ValueError("pad() got an empty list of features")
    if not all(isinstance(item, Mapping) for item in encoded_inputs):
        raise TypeError("pad() takes a dict of fields or a list of dicts (one per example)")
    keys = list(encoded_inputs[0].keys())
    for index, item in enumerate(encoded_inputs):
        missing = [key for key in keys if key not in item]
        if missing:
            raise ValueError(f"pad(): feature {index} has no {missing} (feature 0 has {keys})")
    return {key: [item[key] for item in encoded_inputs] for key in keys}


def _to_python(columns: dict[str, Any], main: str) -> tuple[str | None, dict[str, Any]]:
    """Tensors and arrays become Python lists; returns the tensor type they came in, if any."""
    first = columns[main][0]
    if isinstance(first, (list, tuple)):
        first = next((row[0] for row in columns[main] if len(row)), first)
    if isinstance(first, (int, np.integer, list, tuple)) and not isinstance(first, np.ndarray):
        return None, columns
    module = type(first).__module__
    if isinstance(first, (np.ndarray, np.generic)):
        kind = "np"
    elif module.startswith("torch"):
        kind = "pt"
    elif module.startswith("tensorflow"):
        kind = "tf"
    else:
        raise TypeError(f"pad(): {main!r} holds {type(first).__name__}; expected ints, lists, arrays or tensors")
    return kind, {key: _python(value) for key, value in columns.items()}


def _python(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_python(item) for item in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if hasattr(value, "numpy"):
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else value.numpy()
        return array.tolist()
    return value


def _pad_rows(
    rows: dict[str, list], main: str, values: PadValues, options: BatchOptions, side: str, attention: bool
) -> dict[str, list]:
    """Pad each example of a batch (dict of per-example lists) the way Hugging Face's ``_pad`` does."""
    lengths = np.fromiter((len(row) for row in rows[main]), dtype=np.int64, count=len(rows[main]))
    width = options.width(lengths)
    if attention and "attention_mask" not in rows:
        rows["attention_mask"] = [[1] * len(row) for row in rows[main]]
    fills = {main: values.pad_id, "attention_mask": 0, "token_type_ids": values.pad_type_id, "special_tokens_mask": 1}
    if width is None:
        return rows
    padded = dict(rows)
    for key, fill in fills.items():
        if key not in rows:
            continue
        column = []
        for row, length in zip(rows[key], lengths.tolist(), strict=True):
            missing = width - length
            row = list(row)
            if missing > 0:
                row = row + [fill] * missing if side == "right" else [fill] * missing + row
            column.append(row)
        padded[key] = column
    return padded

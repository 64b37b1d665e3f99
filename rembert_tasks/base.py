"""What every pipeline shares: arguments checked where they enter, inputs in every form Hugging Face's pipelines
take (one, a list, a generator or a dataset), features run through the model in length-sorted batches, results
back in input order.

A task is a subclass that says how inputs become features (`_features`), what it keeps of the model's outputs
for each feature (`_keep`) and how one input's features become its result (`_postprocess`). The model itself is
a `ModelRunner`, given by the framework's `pipeline()` (rembert_pt or rembert_tf), so a task is written once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from .batching import MIN_CHUNK, chunks, is_stream, iterate, known_length, progress_bar, run_sorted


class ModelRunner(Protocol):
    """How a pipeline reaches a model: padded numpy inputs in, the model's output fields as numpy out.

    `framework` is "pt" or "tf". The call gets `input_ids`, `attention_mask` and (when the task sets them)
    `token_type_ids` as int64 arrays of shape [batch, length] and returns the output fields the model produced
    (`logits`, `start_logits`, `last_hidden_state`, ... as float arrays; `hidden_states` as a tuple of arrays).
    """

    framework: str

    def __call__(self, inputs: Mapping[str, np.ndarray], output_hidden_states: bool = False) -> Mapping[str, Any]: ...


class PipelineArgumentError(TypeError):
    """A pipeline was given an argument it does not take."""


def check_positive_int(name: str, value: Any, task: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{task}: {name} must be a positive integer, got {value!r}")
    return int(value)


class Pipeline:
    """Base of the task pipelines; call it on one input, a list, a generator or a dataset.

    >>> classifier = rembert_pt.pipeline("text-classification", model="path/to/model")  # doctest: +SKIP
    >>> classifier(["Das ist gut.", "C'est mauvais."], batch_size=16)  # doctest: +SKIP
    """

    task: ClassVar[str]
    # The spec heads whose model class serves this task (rembert_spec.weights.HEADS).
    heads: ClassVar[tuple[str, ...]]
    # Arguments of a call (also accepted by pipeline() as defaults for every call), with their defaults.
    parameters: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        runner: ModelRunner,
        *,
        batch_size: int = 8,
        progress_bar: bool | None = None,
        task: str | None = None,
        **parameters: Any,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.runner = runner
        self.framework = runner.framework
        self.config = model.config
        self.task = task or type(self).task
        self.batch_size = check_positive_int("batch_size", batch_size, self.task)
        self.progress_bar = progress_bar
        self._defaults = self._check_names(parameters)
        self._settle(dict(self._defaults))  # bad defaults fail here, not at the first call

    def __repr__(self) -> str:
        model = type(self.model).__name__
        return f"{type(self).__name__}(task={self.task!r}, framework={self.framework!r}, model={model})"

    # -- arguments ------------------------------------------------------------------------------------------

    def _check_names(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(arguments) - set(self.parameters))
        if unknown:
            takes = ", ".join(["batch_size", "progress_bar", *self.parameters])
            raise PipelineArgumentError(
                f"{self.task}: unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"it takes {takes}"
            )
        return dict(arguments)

    def _settle(self, given: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments with defaults filled in, checked and resolved (once per call)."""
        return {**self.parameters, **given}

    # -- calling --------------------------------------------------------------------------------------------

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        batch_size = check_positive_int("batch_size", kwargs.pop("batch_size", self.batch_size), self.task)
        show = kwargs.pop("progress_bar", self.progress_bar)
        kind, items = self._split_inputs(inputs, kwargs)
        params = self._settle({**self._defaults, **self._check_names(kwargs)})
        if kind == "stream":
            return self._results(iterate(items), params, batch_size, show, known_length(items))
        results = list(self._results(items, params, batch_size, show, len(items)))
        return self._shape(results, kind, inputs, params, kwargs)

    def _split_inputs(self, inputs: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
        """("one", [input]), ("many", list) or ("stream", iterable). Tasks taking inputs as keywords override."""
        if inputs is None:
            raise ValueError(f"{self.task}: no inputs given")
        if is_stream(inputs):
            return "stream", inputs
        if isinstance(inputs, (list, tuple)):
            return "many", list(inputs)
        return "one", [inputs]

    def _shape(self, results: list[Any], kind: str, inputs: Any, params: dict[str, Any], kwargs: dict) -> Any:
        """The call's return value: one result for one input, else the list (Hugging Face's quirks per task)."""
        return results[0] if kind == "one" else results

    def _results(
        self, items: Any, params: dict[str, Any], batch_size: int, show: bool | None, total: int | None
    ) -> Iterator[Any]:
        bar = progress_bar(show, total)
        pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        hidden = self._wants_hidden_states(params)

        def run_batch(batch: dict[str, np.ndarray]) -> Mapping[str, Any]:
            return self.runner(batch, output_hidden_states=hidden)

        def keep(feature: Mapping[str, Any], outputs: Mapping[str, Any], row: int) -> dict[str, Any]:
            return self._keep(feature, outputs, row, params)

        try:
            for chunk in chunks(items, max(MIN_CHUNK, 16 * batch_size)):
                per_item = self._features(chunk, params)
                flat = [feature for features in per_item for feature in features]
                if bar is not None:
                    bar.total += len(flat)
                    bar.refresh()
                kept = run_sorted(flat, run_batch, keep, batch_size, pad_token_id, bar)
                start = 0
                for item, features in zip(chunk, per_item, strict=True):
                    yield self._postprocess(item, features, kept[start : start + len(features)], params)
                    start += len(features)
        finally:
            if bar is not None:
                bar.close()

    # -- what a task says -----------------------------------------------------------------------------------

    def _wants_hidden_states(self, params: dict[str, Any]) -> bool:
        return False

    def _features(self, items: list[Any], params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        """For each input, its rows for the model (one, or several windows)."""
        raise NotImplementedError

    def _keep(
        self, feature: Mapping[str, Any], outputs: Mapping[str, Any], row: int, params: dict[str, Any]
    ) -> dict[str, Any]:
        """What to keep of row `row` of a batch's outputs; by default the logits of the feature's own tokens."""
        return {"logits": np.asarray(outputs["logits"][row, : len(feature["input_ids"])])}

    def _postprocess(
        self, item: Any, features: Sequence[Mapping[str, Any]], kept: Sequence[Mapping[str, Any]], params: dict
    ) -> Any:
        raise NotImplementedError


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax in float64 (scores are compared across frameworks and with Hugging Face to 1e-5)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def check_text(task: str, value: Any, what: str = "input") -> str:
    if not isinstance(value, str):
        raise ValueError(f"{task}: each {what} must be a string, got {type(value).__name__}: {value!r:.80}")
    return value

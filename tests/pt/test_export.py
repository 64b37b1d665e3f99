"""torch.compile(fullgraph=True), torch.export and torch.jit.trace on every PyTorch head, as a user calls them:
dynamic batch and length, outputs equal to eager, the id-range check kept without reading values back."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo

import rembert_pt
from rembert_pt import internals
from rembert_pt.validation import FACTS
from rembert_spec.inputs import unread_range_message
from rembert_spec.outputs import OUTPUT_FOR_HEAD
from rembert_spec.weights import HEADS
from tests.batches import batch_for, config_for

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def model_for(head: str):
    torch.manual_seed(0)
    return getattr(rembert_pt, HEADS[head].pt_class)(config_for(head)).eval()


def inputs_for(head: str, config, batch: int, length: int, labels: bool = False) -> dict[str, torch.Tensor]:
    arrays = batch_for(head, config, seed=batch * 100 + length, batch=batch, length=length)
    return {k: torch.from_numpy(v) for k, v in arrays.items() if labels or k in INPUTS}


def assert_same_outputs(got, expected) -> None:
    assert type(got) is type(expected)
    assert list(got) == list(expected)
    for name, value in expected.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("head", list(HEADS))
def test_compile_fullgraph_with_dynamic_shapes_matches_eager(head):
    model = model_for(head)
    # The "eager" backend runs what Dynamo captured as it is: fullgraph=True fails on any graph break.
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend="eager")
    with torch.no_grad():
        inputs = inputs_for(head, model.config, 3, 9, labels=True)
        assert_same_outputs(compiled(**inputs), model(**inputs))
        inputs = inputs_for(head, model.config, 4, 12, labels=True)
        with torch._dynamo.config.patch(error_on_recompile=True):  # one graph serves every shape
            assert_same_outputs(compiled(**inputs), model(**inputs))


def test_compile_with_inductor_and_gradients_enabled():
    model = model_for("sequence_classification")
    compiled = torch.compile(model, fullgraph=True, dynamic=True)  # the default backend, as a user writes it
    inputs = inputs_for("sequence_classification", model.config, 3, 9)
    assert_same_outputs(compiled(**inputs), model(**inputs))
    inputs = inputs_for("sequence_classification", model.config, 5, 7)
    assert_same_outputs(compiled(**inputs), model(**inputs))


@pytest.mark.slow
@pytest.mark.parametrize("head", list(HEADS))
def test_compile_with_inductor_every_head(head):
    model = model_for(head)
    compiled = torch.compile(model, fullgraph=True, dynamic=True)
    with torch.no_grad():
        for batch, length in ((3, 9), (4, 12)):
            inputs = inputs_for(head, model.config, batch, length, labels=True)
            assert_same_outputs(compiled(**inputs), model(**inputs))


@pytest.mark.parametrize("head", list(HEADS))
def test_torch_export_with_dynamic_shapes_matches_eager(head):
    model = model_for(head)
    example = inputs_for(head, model.config, 3, 9)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=model.config.max_position_embeddings)
    axes = {0: batch, 2: length} if head == "multiple_choice" else {0: batch, 1: length}
    program = torch.export.export(model, (), example, dynamic_shapes={name: axes for name in example})
    inputs = inputs_for(head, model.config, 5, 13)
    out = program.module()(**inputs)
    assert type(out) is OUTPUT_FOR_HEAD[head]  # the record comes back as eager returns it
    assert_same_outputs(out, model(**inputs))


@pytest.mark.parametrize("head", list(HEADS))
def test_jit_trace_passes_its_own_check_and_generalises_over_shapes(head):
    model = model_for(head)
    traced = torch.jit.trace(model, example_kwarg_inputs=inputs_for(head, model.config, 3, 9))  # check_trace=True
    inputs = inputs_for(head, model.config, 5, 13)
    got, expected = traced(**inputs), model(**inputs, return_dict=False)
    assert isinstance(got, tuple) and len(got) == len(expected)  # tuples, as Hugging Face's torchscript=True
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_padding_positions_are_zero_in_a_captured_graph_as_in_eager():
    model = model_for("base")
    inputs = inputs_for("base", model.config, 3, 9)
    program = torch.export.export(model, (), inputs)
    out = program.module()(**inputs).last_hidden_state
    padding = inputs["attention_mask"] == 0
    assert padding.any() and bool((out[padding] == 0).all())


@pytest.mark.parametrize("capture", ["compile", "export"])
def test_out_of_range_ids_are_refused_by_the_graph_with_the_same_words(capture):
    model = model_for("base")
    good = torch.tensor([[1, 2, 3], [4, 5, 6]])
    bad = torch.tensor([[1, 99, 3], [4, 5, 6]])
    if capture == "compile":
        run = torch.compile(model, fullgraph=True, dynamic=True, backend="eager")
        run(input_ids=good)
    else:
        run = torch.export.export(model, (), {"input_ids": good}).module()
    with pytest.raises(RuntimeError, match=r"input_ids must be in \[0, 99\) \(vocab_size=99\), got a value outside"):
        run(input_ids=bad)
    assert unread_range_message("input_ids", 99, "vocab_size") in str(
        pytest.raises(RuntimeError, run, input_ids=torch.tensor([[-1, 2, 3], [4, 5, 6]])).value
    )


def test_labels_out_of_range_are_refused_inside_a_compiled_graph():
    model = model_for("token_classification")
    run = torch.compile(model, fullgraph=True, dynamic=True, backend="eager")
    inputs = inputs_for("token_classification", model.config, 3, 9, labels=True)
    run(**inputs)
    inputs["labels"][0, 0] = 7
    with pytest.raises(RuntimeError, match=r"labels must be in \[0, 2\) or -100 \(num_labels=2\), got a value"):
        run(**inputs)


def test_ids_on_a_device_are_checked_without_reading_them_back():
    # Meta tensors have no values: any host read (int(), .item(), bool()) would raise.
    ids = torch.empty(2, 3, dtype=torch.long, device="meta")
    FACTS.check_id_range("input_ids", ids, 99, "vocab_size", allow_ignore=False)
    model = model_for("base").to("meta")
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=torch.zeros_like(ids))
    assert out.last_hidden_state.shape == (2, 3, model.config.hidden_size)


def test_with_assert_async_off_captured_graphs_skip_the_range_check(monkeypatch):
    monkeypatch.setattr(internals.SWITCHES, "disabled", {"assert_async"})
    model = model_for("base")
    program = torch.export.export(model, (), {"input_ids": torch.tensor([[1, 2, 3]])})
    assert "_assert_async" not in str(program.graph)
    monkeypatch.setattr(internals.SWITCHES, "disabled", set())
    program = torch.export.export(model, (), {"input_ids": torch.tensor([[1, 2, 3]])})
    assert "_assert_async" in str(program.graph)

"""How pipelines are called: batches sorted by length with results in input order, generators and datasets,
the progress bar, loaded models and tokenizers, and clear errors."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from rembert_tasks import PipelineArgumentError

from .conftest import MASKED, QA_EXAMPLES, REPO, TEXTS, assert_same, ours

QA = {"max_seq_len": 40, "doc_stride": 12, "top_k": 2}


@pytest.mark.parametrize(
    "task, head, inputs, kwargs",
    [
        ("fill-mask", "masked_lm", MASKED * 2, {}),
        ("token-classification", "token_classification", TEXTS * 2, {"aggregation_strategy": "first"}),
        ("question-answering", "question_answering", QA_EXAMPLES * 2, QA),
        ("sentence-embeddings", "masked_lm", TEXTS * 2, {"return_tensors": False}),
    ],
)
def test_batching_sorts_by_length_and_keeps_input_order(task_dirs, task, head, inputs, kwargs):
    pipe = ours("pt", task, task_dirs[head])
    one_by_one = [pipe(item, batch_size=1, **kwargs) for item in inputs]
    batched = pipe(inputs, batch_size=5, **kwargs)
    assert_same(batched, one_by_one, atol=1e-5)


def test_generators_and_datasets_give_results_one_at_a_time(task_dirs):
    pipe = ours("pt", "text-classification", task_dirs["sequence_classification"])
    expected = pipe(TEXTS)
    stream = pipe(text for text in TEXTS)
    assert not isinstance(stream, list)
    assert_same(list(stream), expected)

    class Dataset:  # a map-style dataset (torch.utils.data.Dataset, datasets.Dataset columns): len + index
        def __len__(self):
            return len(TEXTS)

        def __getitem__(self, index):
            return TEXTS[index]

    assert_same(list(pipe(Dataset(), batch_size=4)), expected)
    assert_same(pipe(tuple(TEXTS)), expected)


def test_progress_bar_for_long_inputs_only(task_dirs, capsys):
    pipe = ours("pt", "text-classification", task_dirs["sequence_classification"])
    many = ["Le chat dort.", "東京", "Wait... what?!"] * 100
    pipe(TEXTS)
    assert "row" not in capsys.readouterr().err
    results = pipe(many, batch_size=64)
    assert len(results) == 300 and "300/300" in capsys.readouterr().err
    pipe(many, batch_size=64, progress_bar=False)
    assert "row" not in capsys.readouterr().err
    pipe(TEXTS[:2], progress_bar=True)
    assert "2/2" in capsys.readouterr().err


def test_loaded_model_and_tokenizer(task_dirs):
    from rembert_pt import RemBertForQuestionAnswering, pipeline
    from rembert_tokenize import RemBertTokenizer

    directory = task_dirs["question_answering"]
    model = RemBertForQuestionAnswering.from_pretrained(directory)
    slow = RemBertTokenizer.from_pretrained(directory)  # the slow tokenizer has the same alignment
    pipe = pipeline("question-answering", model=model, tokenizer=slow, device="cpu", **QA)
    assert pipe.model is model and pipe.framework == "pt"
    assert_same(pipe(QA_EXAMPLES), ours("pt", "question-answering", directory)(QA_EXAMPLES, **QA))


def test_tensorflow_loaded_model(task_dirs):
    from rembert_tf import TFRemBertForTokenClassification, pipeline

    directory = task_dirs["token_classification"]
    model = TFRemBertForTokenClassification.from_pretrained(directory)
    pipe = pipeline("ner", model=model, tokenizer=directory, aggregation_strategy="max")
    assert pipe.task == "token-classification"
    assert_same(pipe(TEXTS), ours("pt", "token-classification", directory)(TEXTS, aggregation_strategy="max"))


def test_untrained_head_warns_naming_the_new_weights(task_dirs):
    from rembert_pt import pipeline

    with pytest.warns(
        UserWarning, match=r"question-answering: .* newly initialised: qa_outputs\.weight, qa_outputs\.bias"
    ):
        pipeline("question-answering", model=task_dirs["masked_lm"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint trained for the task loads without a warning
        pipeline("question-answering", model=task_dirs["question_answering"])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda p, d: p("translation", model=d["masked_lm"]), KeyError, "unknown task 'translation'; known tasks:"),
        (lambda p, d: p("fill-mask", model=d["masked_lm"], topk=3), PipelineArgumentError, "unknown argument 'topk'"),
        (lambda p, d: p("fill-mask", model=d["masked_lm"], top_k=0), ValueError, "top_k must be a positive integer"),
        (lambda p, d: p("fill-mask"), ValueError, "pass model="),
        (lambda p, d: p("ner", model=d["token_classification"], aggregation_strategy="longest"), ValueError, "one of"),
        (
            lambda p, d: p("ner", model=d["token_classification"], stride=4),
            ValueError,
            'stride .* needs an aggregation_strategy other than "none"',
        ),
        (
            lambda p, d: p("question-answering", model=d["question_answering"], doc_stride=50, max_seq_len=40),
            ValueError,
            r"doc_stride \(50\) is larger than max_seq_len \(40\)",
        ),
        (
            lambda p, d: p("feature-extraction", model=d["masked_lm"], normalize=True),
            ValueError,
            "normalize=True needs pooling",
        ),
        (lambda p, d: p("feature-extraction", model=d["masked_lm"], layer=7), ValueError, "index into the 3 hidden"),
    ],
)
def test_bad_pipeline_arguments(task_dirs, call, error, message):
    from rembert_pt import pipeline

    with pytest.raises(error, match=message):
        call(pipeline, task_dirs)


def test_bad_inputs(task_dirs):
    fill = ours("pt", "fill-mask", task_dirs["masked_lm"])
    with pytest.raises(ValueError, match=r"no mask token \(\[MASK\]\) in the input 'no mask here'"):
        fill(["a [MASK]", "no mask here"])
    with pytest.raises(PipelineArgumentError, match="unknown argument 'top_n'; it takes batch_size"):
        fill("a [MASK]", top_n=2)
    classify = ours("pt", "text-classification", task_dirs["sequence_classification"])
    with pytest.raises(ValueError, match='pass {"text": ..., "text_pair": ...}'):
        classify([["premise", "hypothesis"]])
    with pytest.raises(ValueError, match='keys "text" and "text_pair", got keys'):
        classify({"premise": "a", "hypothesis": "b"})
    with pytest.raises(ValueError, match="each input must be a string, got int"):
        classify([1, 2])
    qa = ours("pt", "question-answering", task_dirs["question_answering"])
    with pytest.raises(ValueError, match="the context is empty"):
        qa(question="Who?", context="")
    with pytest.raises(ValueError, match="2 questions but 3 contexts"):
        qa(question=["a", "b"], context=["x", "y", "z"])
    with pytest.raises(ValueError, match='keys "question" and "context"'):
        qa([{"question": "Who?"}])


def test_model_object_of_the_wrong_head_and_missing_tokenizer(task_dirs):
    from rembert_pt import RemBertForMaskedLM, pipeline

    model = RemBertForMaskedLM.from_pretrained(task_dirs["masked_lm"])
    with pytest.raises(ValueError, match="question-answering needs a RemBertForQuestionAnswering, got a RemBertFor"):
        pipeline("question-answering", model=model, tokenizer=task_dirs["masked_lm"])
    with pytest.raises(ValueError, match="with a loaded model, pass tokenizer="):
        pipeline("fill-mask", model=model)
    # hidden states come from any head's backbone
    embeddings = pipeline("sentence-embeddings", model=model, tokenizer=task_dirs["masked_lm"])(TEXTS[:2])
    assert embeddings.shape == (2, 24)


def test_task_logic_imports_no_framework():
    code = (
        "import sys, rembert_tasks, rembert_tasks.metrics, rembert_tasks.features\n"
        "bad = [m for m in ('torch', 'tensorflow', 'keras', 'rembert_tokenize', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)

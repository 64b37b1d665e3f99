"""Hugging Face's Trainer and data collators train and evaluate every rembert_pt head, with our tokenizer.

Each test is a Hugging Face user's script: a tokenized dataset, one of transformers' collators, a
`compute_metrics`, `Trainer(...).train()` then `.evaluate()`. The same script runs on transformers' own RemBERT
class loaded from the same checkpoint: the losses logged at every step and the evaluation metrics must agree.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

import rembert_pt
from rembert_spec import RemBertConfig
from rembert_spec.testing import write_random_checkpoint
from rembert_spec.weights import HEADS
from rembert_tokenize import RemBertTokenizerFast
from rembert_tokenize.testing import train_sentencepiece

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "multilingual.txt"
LINES = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
TRAIN, EVAL = LINES[:16], LINES[16:24]
MAX_LENGTH = 24


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> RemBertTokenizerFast:
    directory = tmp_path_factory.mktemp("trainer-tokenizer")
    return RemBertTokenizerFast(vocab_file=train_sentencepiece(SAMPLE, directory), model_max_length=MAX_LENGTH)


def checkpoint(tmp_path, tokenizer, head: str, **fields) -> Path:
    config = RemBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=12,
        num_hidden_layers=2,
        num_attention_heads=3,
        input_embedding_size=8,
        output_embedding_size=10,
        intermediate_size=20,
        max_position_embeddings=64,
        classifier_dropout_prob=0.0,
        **fields,
    )
    write_random_checkpoint(tmp_path / "model", config, head, seed=5, noise=0.02)
    return tmp_path / "model"


def train_and_evaluate(model, tmp_path, train, evaluation, collator, compute_metrics, **options):
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=3,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **options.pop("args", {}),
    )
    before = [p.detach().clone() for p in model.parameters()]
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=collator,
        compute_metrics=compute_metrics,
        **options,
    )
    trainer.train()
    metrics = trainer.evaluate()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)), "nothing trained"
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    return losses, metrics


def same_run(head: str, directory: Path, tmp_path, run, **overrides) -> dict:
    """The script on our class and on transformers' class; the logged losses and metrics agree."""
    ours_model = getattr(rembert_pt, HEADS[head].pt_class).from_pretrained(directory, **overrides)
    theirs_model = getattr(transformers, HEADS[head].pt_class).from_pretrained(directory, **overrides)
    ours, theirs = run(ours_model, tmp_path / "ours"), run(theirs_model, tmp_path / "theirs")
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-4, atol=1e-5)
    assert ours[1].keys() == theirs[1].keys()
    for key, value in ours[1].items():
        if key.startswith("eval_") and "runtime" not in key and "per_second" not in key:
            np.testing.assert_allclose(value, theirs[1][key], rtol=1e-4, atol=1e-5, err_msg=key)
    return ours[1]


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> dict:
    return {"accuracy": float((predictions == labels).mean())}


def test_sequence_classification_with_padding_collator(tokenizer, tmp_path):
    def examples(lines):
        return [{**tokenizer(line, truncation=True), "labels": i % 3} for i, line in enumerate(lines)]

    def run(model, out):
        return train_and_evaluate(
            model,
            out,
            examples(TRAIN),
            examples(EVAL),
            transformers.DataCollatorWithPadding(tokenizer),
            lambda p: accuracy(p.predictions.argmax(-1), p.label_ids),
        )

    directory = checkpoint(tmp_path, tokenizer, "sequence_classification", num_labels=3)
    metrics = same_run("sequence_classification", directory, tmp_path, run)
    assert 0 <= metrics["eval_accuracy"] <= 1


def test_multiple_choice_with_multiple_choice_collator(tokenizer, tmp_path):
    def examples(lines):
        rows = []
        for i, line in enumerate(lines):
            choices = [lines[(i + k) % len(lines)] for k in (1, 2, 3)]
            encoded = tokenizer([line] * 3, choices, truncation=True)
            rows.append({**{k: v for k, v in encoded.items()}, "labels": i % 3})
        return rows

    def run(model, out):
        return train_and_evaluate(
            model,
            out,
            examples(TRAIN),
            examples(EVAL),
            transformers.DataCollatorForMultipleChoice(tokenizer),
            lambda p: accuracy(p.predictions.argmax(-1), p.label_ids),
        )

    same_run("multiple_choice", checkpoint(tmp_path, tokenizer, "multiple_choice"), tmp_path, run)


def test_token_classification_with_token_classification_collator(tokenizer, tmp_path):
    def examples(lines):
        rows = []
        for line in lines:
            words = line.split()
            encoded = tokenizer(words, is_split_into_words=True, truncation=True)
            previous, labels = None, []
            for word in encoded.word_ids():
                labels.append(-100 if word is None or word == previous else len(words[word]) % 3)
                previous = word
            rows.append({**encoded, "labels": labels})
        return rows

    def compute_metrics(p):
        counted = p.label_ids != -100
        return accuracy(p.predictions.argmax(-1)[counted], p.label_ids[counted])

    def run(model, out):
        return train_and_evaluate(
            model,
            out,
            examples(TRAIN),
            examples(EVAL),
            transformers.DataCollatorForTokenClassification(tokenizer),
            compute_metrics,
        )

    directory = checkpoint(tmp_path, tokenizer, "token_classification", num_labels=3)
    same_run("token_classification", directory, tmp_path, run)


def test_question_answering_with_padding_collator(tokenizer, tmp_path):
    def examples(lines):
        rows = []
        for i, line in enumerate(lines):
            encoded = tokenizer(lines[(i + 1) % len(lines)], line, truncation=True)
            start = len(encoded["input_ids"]) // 2
            rows.append({**encoded, "start_positions": start, "end_positions": start + 1})
        return rows

    def compute_metrics(p):
        start_logits, _ = p.predictions
        return accuracy(start_logits.argmax(-1), p.label_ids[0])

    def run(model, out):
        return train_and_evaluate(
            model,
            out,
            examples(TRAIN),
            examples(EVAL),
            transformers.DataCollatorWithPadding(tokenizer),
            compute_metrics,
        )

    same_run("question_answering", checkpoint(tmp_path, tokenizer, "question_answering"), tmp_path, run)


def test_masked_lm_with_language_modeling_collator(tokenizer, tmp_path):
    def compute_metrics(p):
        # What the issue's user wrote: it indexes [batch, length, vocab] logits with the labels' mask.
        counted = p.label_ids != -100
        return accuracy(p.predictions.argmax(-1)[counted], p.label_ids[counted])

    def run(model, out):
        return train_and_evaluate(
            model,
            out,
            [tokenizer(line, truncation=True) for line in TRAIN],
            [tokenizer(line, truncation=True) for line in EVAL],
            transformers.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.3),
            compute_metrics,
        )

    same_run("masked_lm", checkpoint(tmp_path, tokenizer, "masked_lm"), tmp_path, run)


def test_causal_lm_with_language_modeling_collator(tokenizer, tmp_path):
    def compute_metrics(p):
        predicted, labels = p.predictions[:, :-1].argmax(-1), p.label_ids[:, 1:]
        counted = labels != -100
        return accuracy(predicted[counted], labels[counted])

    def run(model, out):
        return train_and_evaluate(
            model,
            out,
            [tokenizer(line, truncation=True) for line in TRAIN],
            [tokenizer(line, truncation=True) for line in EVAL],
            transformers.DataCollatorForLanguageModeling(tokenizer, mlm=False),
            compute_metrics,
        )

    same_run("causal_lm", checkpoint(tmp_path, tokenizer, "causal_lm", is_decoder=True), tmp_path, run)


def test_the_base_model_with_a_loss_function(tokenizer, tmp_path):
    """RemBertModel has no loss of its own: Trainer's compute_loss_func gives it one (here, a regression of the
    pooled output's mean onto a target)."""

    def examples(lines):
        return [{**tokenizer(line, truncation=True), "labels": float(i % 5) / 10} for i, line in enumerate(lines)]

    def loss(outputs, labels, num_items_in_batch=None):
        return torch.nn.functional.mse_loss(outputs["pooler_output"].mean(-1), labels)

    def compute_metrics(p):
        last_hidden_state, pooled = p.predictions
        return {"mse": float(((pooled.mean(-1) - p.label_ids) ** 2).mean())}

    def run(model, out):
        return train_and_evaluate(
            model,
            out,
            examples(TRAIN),
            examples(EVAL),
            transformers.DataCollatorWithPadding(tokenizer),
            compute_metrics,
            compute_loss_func=loss,
            args={"label_names": ["labels"]},
        )

    metrics = same_run("base", checkpoint(tmp_path, tokenizer, "base"), tmp_path, run)
    assert np.isclose(metrics["eval_mse"], metrics["eval_loss"], rtol=0.1)

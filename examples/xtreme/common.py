"""What the XTREME recipes share: command-line options, reading local files or Hugging Face `datasets`, a short
training loop in PyTorch or Keras, and the per-language summary table.

The task logic itself (word labels, QA windows, metrics) comes from `rembert_tasks`, the same code the pipelines
run; evaluation goes through the pipelines, loaded from the checkpoint the recipe saves.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

XTREME = Path(__file__).resolve().parent
EXAMPLES = XTREME.parent
DATA = EXAMPLES / "data" / "xtreme"
sys.path.insert(0, str(EXAMPLES.parent))  # run from a checkout without installing
sys.path.insert(0, str(EXAMPLES))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parser(description: str, train: Path, evaluation: Path) -> argparse.ArgumentParser:
    """The options every recipe takes; a recipe adds its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=["pt", "tf"], default="pt", help="PyTorch or TensorFlow/Keras")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint to fine-tune (default: the tiny one)")
    parser.add_argument("--train", type=Path, default=train, help=f"training file (default: {train.name})")
    parser.add_argument("--eval", type=Path, default=evaluation, help=f"evaluation file (default: {evaluation.name})")
    parser.add_argument("--dataset", default=None, help="a Hugging Face datasets name instead of files (network)")
    parser.add_argument(
        "--languages", default=None, help="comma-separated dataset configs / languages to evaluate (--dataset)"
    )
    parser.add_argument("--train-language", default="en", help="the --dataset config to train on (zero-shot)")
    parser.add_argument("--output-dir", type=Path, required=True, help="where the fine-tuned checkpoint goes")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def base_checkpoint(model: Path | None) -> Path:
    """The checkpoint to start from: --model, else the bundled tiny random one (built on first use)."""
    if model is not None:
        return model
    from build_tiny_checkpoint import build

    return build()[0]


# -- reading data ------------------------------------------------------------------------------------------


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON Lines, JSON (a list of objects), CSV or TSV file, as dicts."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such file")
    if path.suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise SystemExit(f"{path}: expected a JSON list of objects")
        return rows
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_hub(name: str, config: str | None, split: str) -> Iterable[dict[str, Any]]:
    """Rows of a Hugging Face dataset (needs the `datasets` package and the network)."""
    try:
        import datasets
    except ImportError:
        raise SystemExit(
            f"--dataset {name} needs Hugging Face datasets: pip install 'rembert[xtreme]' (or datasets); "
            "without the network, use --train / --eval files"
        ) from None
    return datasets.load_dataset(name, config, split=split)


def hub_configs(args: argparse.Namespace, default: str) -> list[str]:
    return (args.languages or default).split(",")


def language_of(row: dict[str, Any], default: str = "en") -> str:
    return str(row.get("language") or row.get("lang") or default)


# -- training ----------------------------------------------------------------------------------------------


def pad_rows(rows: dict[str, list], pad_token_id: int) -> dict[str, Any]:
    """Every row padded to the longest: input_ids with the pad id, token-level labels with -100; an
    attention_mask is added. Scalars (labels, answer positions) pass as they are."""
    import numpy as np

    length = max(len(ids) for ids in rows["input_ids"])
    padded: dict[str, Any] = {}
    for name, values in rows.items():
        if values and isinstance(values[0], list):
            fill = pad_token_id if name == "input_ids" else (-100 if name == "labels" else 0)
            padded[name] = np.array([v + [fill] * (length - len(v)) for v in values], dtype=np.int64)
        else:
            padded[name] = np.array(values, dtype=np.int64)
    padded["attention_mask"] = np.array([[1] * len(v) + [0] * (length - len(v)) for v in rows["input_ids"]])
    return padded


def train(framework: str, model: Any, rows: dict[str, Any], args: argparse.Namespace) -> list[float]:
    """A few optimisation steps on the padded rows (AdamW, shuffled batches); prints and returns each loss."""
    if framework == "pt":
        return _train_torch(model, rows, args)
    return _train_keras(model, rows, args)


def _train_torch(model: Any, rows: dict[str, Any], args: argparse.Namespace) -> list[float]:
    import torch

    torch.manual_seed(args.seed)
    tensors = {name: torch.from_numpy(values) for name, values in rows.items()}
    count = len(tensors["input_ids"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    model.train()
    losses, order = [], torch.randperm(count)
    for step in range(args.steps):
        start = step * args.batch_size % count
        index = order.roll(-start)[: args.batch_size]
        loss = model(**{name: values[index] for name, values in tensors.items()}).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        print(f"step {step:3d} loss {losses[-1]:.4f}", flush=True)
    model.eval()
    return losses


def _train_keras(model: Any, rows: dict[str, Any], args: argparse.Namespace) -> list[float]:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    count = len(rows["input_ids"])
    dataset = (
        tf.data.Dataset.from_tensor_slices({name: values.astype("int32") for name, values in rows.items()})
        .shuffle(count, seed=args.seed)
        .repeat()
        .batch(min(args.batch_size, count), drop_remainder=True)
    )
    model.compile(optimizer=keras.optimizers.AdamW(args.lr))  # no loss: the model's own, from the labels
    losses: list[float] = []

    class PrintLoss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            losses.append(float(logs["loss"]))
            print(f"step {epoch:3d} loss {losses[-1]:.4f}", flush=True)

    # One step per "epoch", so that each printed loss is one step's.
    model.fit(dataset, epochs=args.steps, steps_per_epoch=1, verbose=0, callbacks=[PrintLoss()])
    return losses


def model_class(framework: str, head: str) -> type:
    from rembert_spec.weights import HEADS

    if framework == "pt":
        import rembert_pt as package
    else:
        import rembert_tf as package
    return getattr(package, HEADS[head].pt_class if framework == "pt" else HEADS[head].tf_class)


def pipeline(framework: str) -> Callable[..., Any]:
    if framework == "pt":
        from rembert_pt import pipeline
    else:
        from rembert_tf import pipeline
    return pipeline


def save(model: Any, tokenizer: Any, directory: Path) -> None:
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


# -- reporting ---------------------------------------------------------------------------------------------


def by_language(languages: Iterable[str], values: Iterable[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for language, value in zip(languages, values, strict=True):
        grouped[language].append(value)
    return dict(sorted(grouped.items()))


def print_table(title: str, results: dict[str, dict[str, float]], columns: list[str]) -> None:
    """Per-language metrics (in %) and their average over languages, as XTREME reports them."""
    print(f"\n{title}")
    print(f"{'language':<10}{'examples':>9}" + "".join(f"{column:>12}" for column in columns))
    for language, metrics in results.items():
        print(f"{language:<10}{metrics['count']:>9}" + "".join(f"{metrics[c]:>12.1f}" for c in columns))
    averages = {c: sum(m[c] for m in results.values()) / len(results) for c in columns}
    total = sum(m["count"] for m in results.values())
    print(f"{'average':<10}{total:>9}" + "".join(f"{averages[c]:>12.1f}" for c in columns))

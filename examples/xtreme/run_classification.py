"""Sentence-pair classification in XNLI / PAWS-X shape: fine-tune RemBERT, evaluate per language, save.

Rows are (premise, hypothesis, label[, language]) — or PAWS-X's (sentence1, sentence2, label) — from JSON Lines,
JSON, CSV or TSV files, or a Hugging Face dataset by name (`xnli`, `paws-x`; needs `datasets` and the network):
trained on one language, evaluated on every language (XTREME's zero-shot transfer). The evaluation runs the
text-classification pipeline on the saved checkpoint and prints accuracy per language and a summary table.

    python examples/xtreme/run_classification.py --framework pt --output-dir /tmp/xnli-pt
    python examples/xtreme/run_classification.py --framework tf --output-dir /tmp/xnli-tf --steps 100
    python examples/xtreme/run_classification.py --dataset xnli --languages en,de,ar,zh --model path/to/rembert \\
        --output-dir /tmp/xnli --steps 2000 --lr 1e-5
"""

from __future__ import annotations

from typing import Any

from common import (
    DATA,
    base_checkpoint,
    by_language,
    hub_configs,
    language_of,
    load_hub,
    model_class,
    pad_rows,
    pipeline,
    print_table,
    read_records,
    save,
    train,
)
from common import parser as make_parser

XNLI_LABELS = ["entailment", "neutral", "contradiction"]


def pair_of(row: dict[str, Any]) -> tuple[str, str]:
    for first, second in (("premise", "hypothesis"), ("sentence1", "sentence2"), ("text", "text_pair")):
        if first in row and second in row:
            return str(row[first]), str(row[second])
    raise SystemExit(f"a row needs premise/hypothesis or sentence1/sentence2 fields, got {sorted(row)}")


def examples(rows: list[dict[str, Any]], names: list[str] | None, default_language: str) -> list[dict[str, Any]]:
    """{"text", "text_pair", "label" (a name), "language"} per row; integer labels are named through `names`."""
    found = []
    for row in rows:
        text, text_pair = pair_of(row)
        label = row["label"]
        if isinstance(label, int) or (isinstance(label, str) and label.isdigit()):
            label = names[int(label)] if names else str(label)
        found.append(
            {"text": text, "text_pair": text_pair, "label": str(label), "language": language_of(row, default_language)}
        )
    return found


def read(args: Any) -> tuple[list[dict], list[dict]]:
    if args.dataset is None:
        return examples(read_records(args.train), None, "en"), examples(read_records(args.eval), None, "en")
    names = XNLI_LABELS if args.dataset == "xnli" else None
    training = examples(list(load_hub(args.dataset, args.train_language, "train")), names, args.train_language)
    evaluation = []
    for language in hub_configs(args, args.train_language):
        evaluation += examples(list(load_hub(args.dataset, language, "test")), names, language)
    return training, evaluation


def main() -> None:
    parser = make_parser(__doc__, DATA / "xnli_train.jsonl", DATA / "xnli_dev.jsonl")
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    training, evaluation = read(args)
    labels = sorted({example["label"] for example in training + evaluation})
    if set(labels) <= set(XNLI_LABELS):
        labels = XNLI_LABELS
    label2id = {label: index for index, label in enumerate(labels)}

    from rembert_tokenize import RemBertTokenizerFast

    checkpoint = base_checkpoint(args.model)
    tokenizer = RemBertTokenizerFast.from_pretrained(checkpoint)
    encoded = tokenizer(
        [e["text"] for e in training], [e["text_pair"] for e in training], truncation=True, max_length=args.max_length
    )
    rows = {
        "input_ids": encoded["input_ids"],
        "token_type_ids": encoded["token_type_ids"],
        "labels": [label2id[e["label"]] for e in training],
    }
    model = model_class(args.framework, "sequence_classification").from_pretrained(
        checkpoint, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    print(f"fine-tuning {checkpoint} ({args.framework}) on {len(training)} pairs, {len(labels)} labels")
    train(args.framework, model, pad_rows(rows, tokenizer.pad_token_id), args)
    save(model, tokenizer, args.output_dir)

    classifier = pipeline(args.framework)("text-classification", model=args.output_dir, truncation=True)
    predicted = classifier([{"text": e["text"], "text_pair": e["text_pair"]} for e in evaluation], batch_size=32)
    correct = [p["label"] == e["label"] for p, e in zip(predicted, evaluation, strict=True)]
    results = {
        language: {"accuracy": 100 * sum(hits) / len(hits), "count": len(hits)}
        for language, hits in by_language([e["language"] for e in evaluation], correct).items()
    }
    print_table(f"sentence-pair classification ({args.framework}, {args.steps} steps)", results, ["accuracy"])
    print(f"\nsaved {args.output_dir}: pipeline('text-classification', model='{args.output_dir}')")


if __name__ == "__main__":
    main()

"""Extractive question answering in SQuAD / XQuAD shape: fine-tune RemBERT, evaluate EM / F1 per language, save.

Questions come from SQuAD-format JSON files (an article may name its `language`; else --language), or from a
Hugging Face dataset by name (`squad` to train; `xquad` configs like `xquad.de` to evaluate; needs `datasets` and
the network). Long contexts are cut into windows of --max-seq-len tokens overlapping by --doc-stride; a window
without the whole answer learns to point at [CLS]. The evaluation runs the question-answering pipeline on the saved
checkpoint (n-best span search over every window) and scores answers with SQuAD's normalisation, or MLQA's
per-language one (--normalization mlqa).

    python examples/xtreme/run_qa.py --framework pt --output-dir /tmp/xquad-pt
    python examples/xtreme/run_qa.py --dataset squad --languages xquad.de,xquad.zh --model path/to/rembert \\
        --output-dir /tmp/xquad --steps 5000 --lr 1e-5 --max-seq-len 384 --doc-stride 128
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import (
    DATA,
    base_checkpoint,
    by_language,
    hub_configs,
    load_hub,
    model_class,
    pad_rows,
    pipeline,
    print_table,
    save,
    train,
)
from common import parser as make_parser

from rembert_tasks.features import qa_train_features
from rembert_tasks.metrics import squad_scores


def read_squad(path: Path, default_language: str) -> list[dict[str, Any]]:
    """Questions {"id", "question", "context", "answers", "answer_start", "language"} of a SQuAD JSON file."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such file")
    data = json.loads(path.read_text(encoding="utf-8"))
    questions = []
    for article in data.get("data", []):
        language = article.get("language", default_language)
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = qa["answers"]
                if not answers:
                    raise SystemExit(f"{path}: question {qa['id']} has no answer (SQuAD 2.0 is not supported here)")
                questions.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"],
                        "context": paragraph["context"],
                        "answers": [answer["text"] for answer in answers],
                        "answer_start": answers[0]["answer_start"],
                        "language": language,
                    }
                )
    return questions


def from_hub(rows: Any, language: str) -> list[dict[str, Any]]:
    return [
        {
            "id": row["id"],
            "question": row["question"],
            "context": row["context"],
            "answers": list(row["answers"]["text"]),
            "answer_start": row["answers"]["answer_start"][0],
            "language": language,
        }
        for row in rows
    ]


def read(args: Any) -> tuple[list[dict], list[dict]]:
    if args.dataset is None:
        return read_squad(args.train, args.language), read_squad(args.eval, args.language)
    evaluation = []
    for config in hub_configs(args, "xquad.en"):
        evaluation += from_hub(load_hub("xquad", config, "validation"), config.split(".")[-1])
    return from_hub(load_hub(args.dataset, None, "train"), "en"), evaluation


def main() -> None:
    parser = make_parser(__doc__, DATA / "squad_train.json", DATA / "xquad_dev.json")
    parser.add_argument("--language", default="en", help="language of articles that do not name theirs")
    parser.add_argument("--max-seq-len", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--max-answer-len", type=int, default=30)
    parser.add_argument("--normalization", choices=["squad", "mlqa"], default="squad")
    parser.set_defaults(train_language="en")
    args = parser.parse_args()
    training, evaluation = read(args)

    from rembert_spec import RemBertConfig
    from rembert_tokenize import RemBertTokenizerFast

    checkpoint = base_checkpoint(args.model)
    tokenizer = RemBertTokenizerFast.from_pretrained(checkpoint)
    max_seq_len = min(args.max_seq_len, RemBertConfig.from_pretrained(checkpoint).max_position_embeddings)
    features = qa_train_features(
        tokenizer,
        [q["question"] for q in training],
        [q["context"] for q in training],
        [q["answer_start"] for q in training],
        [q["answers"][0] for q in training],
        max_seq_len=max_seq_len,
        doc_stride=args.doc_stride,
    )
    rows = {name: features[name] for name in ("input_ids", "token_type_ids", "start_positions", "end_positions")}
    model = model_class(args.framework, "question_answering").from_pretrained(checkpoint)
    windows = len(rows["input_ids"])
    print(f"fine-tuning {checkpoint} ({args.framework}) on {len(training)} questions in {windows} windows")
    train(args.framework, model, pad_rows(rows, tokenizer.pad_token_id), args)
    save(model, tokenizer, args.output_dir)

    reader = pipeline(args.framework)(
        "question-answering",
        model=args.output_dir,
        max_seq_len=max_seq_len,
        doc_stride=args.doc_stride,
        max_answer_len=args.max_answer_len,
    )
    answers = reader([{"question": q["question"], "context": q["context"]} for q in evaluation], batch_size=32)
    answers = answers if isinstance(answers, list) else [answers]
    results = {}
    # a context with no possible span gives no answer (an empty list)
    answers = [answer["answer"] if isinstance(answer, dict) else "" for answer in answers]
    grouped = by_language([q["language"] for q in evaluation], zip(evaluation, answers, strict=True))
    for language, questions in grouped.items():
        predictions = {q["id"]: answer for q, answer in questions}
        references = {q["id"]: q["answers"] for q, _ in questions}
        results[language] = squad_scores(predictions, references, language if args.normalization == "mlqa" else None)
    title = f"extractive QA ({args.framework}, {args.steps} steps, {args.normalization} normalisation)"
    print_table(title, results, ["exact_match", "f1"])
    print(f"\nsaved {args.output_dir}: pipeline('question-answering', model='{args.output_dir}')")


if __name__ == "__main__":
    main()

"""Named-entity recognition in WikiANN (PAN-X) shape: fine-tune RemBERT, evaluate entity-level F1 per language, save.

Sentences come from CoNLL files (one `token<TAB>tag` per line, a blank line between sentences; XTREME's
`lang:token` prefix gives the language), or from a Hugging Face dataset by name (`wikiann`; needs `datasets`
and the network). The first token of each word carries the word's label, the others -100 (ignored by the loss).
The evaluation runs the token-classification pipeline on the saved checkpoint, reads each word's tag from its
first token, and scores entities with seqeval.

    python examples/xtreme/run_ner.py --framework pt --output-dir /tmp/panx-pt
    python examples/xtreme/run_ner.py --dataset wikiann --languages en,de,zh --model path/to/rembert \\
        --output-dir /tmp/panx --steps 2000 --lr 2e-5
"""

from __future__ import annotations

import re
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

from rembert_tasks.features import align_word_labels, word_predictions
from rembert_tasks.metrics import entity_scores

_LANGUAGE_PREFIX = re.compile(r"^([a-z]{2,3}):(.+)$")


def read_conll(path: Path, default_language: str = "en") -> list[dict[str, Any]]:
    """Sentences {"words", "tags", "language"} of a CoNLL file (token and tag separated by a tab or spaces)."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such file")
    sentences, words, tags, language = [], [], [], default_language
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines() + [""], start=1):
        if not line.strip():
            if words:
                sentences.append({"words": words, "tags": tags, "language": language})
            words, tags, language = [], [], default_language
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 2:
            raise SystemExit(f"{path}:{number}: expected a token and a tag, got {line!r}")
        token, tag = fields[0], fields[-1]
        prefixed = _LANGUAGE_PREFIX.match(token)
        if prefixed:
            language, token = prefixed.groups()
        words.append(token)
        tags.append(tag)
    return sentences


def read(args: Any) -> tuple[list[dict], list[dict]]:
    if args.dataset is None:
        return read_conll(args.train), read_conll(args.eval)

    def sentences(language: str, split: str) -> list[dict]:
        rows = load_hub(args.dataset, language, split)
        names = rows.features["ner_tags"].feature.names
        return [
            {"words": row["tokens"], "tags": [names[t] for t in row["ner_tags"]], "language": language} for row in rows
        ]

    evaluation = []
    for language in hub_configs(args, args.train_language):
        evaluation += sentences(language, "test")
    return sentences(args.train_language, "train"), evaluation


def main() -> None:
    parser = make_parser(__doc__, DATA / "panx_train.conll", DATA / "panx_dev.conll")
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    training, evaluation = read(args)
    tags = sorted({tag for sentence in training + evaluation for tag in sentence["tags"]}, key=lambda t: (t != "O", t))
    tag2id = {tag: index for index, tag in enumerate(tags)}

    from rembert_tokenize import RemBertTokenizerFast

    checkpoint = base_checkpoint(args.model)
    tokenizer = RemBertTokenizerFast.from_pretrained(checkpoint)
    encoded = tokenizer(
        [s["words"] for s in training], is_split_into_words=True, truncation=True, max_length=args.max_length
    )
    rows = {
        "input_ids": encoded["input_ids"],
        "token_type_ids": encoded["token_type_ids"],
        "labels": [
            align_word_labels(encoded.word_ids(i), [tag2id[t] for t in sentence["tags"]])
            for i, sentence in enumerate(training)
        ],
    }
    model = model_class(args.framework, "token_classification").from_pretrained(
        checkpoint, num_labels=len(tags), id2label=dict(enumerate(tags)), label2id=tag2id
    )
    print(f"fine-tuning {checkpoint} ({args.framework}) on {len(training)} sentences, tags {', '.join(tags)}")
    train(args.framework, model, pad_rows(rows, tokenizer.pad_token_id), args)
    save(model, tokenizer, args.output_dir)

    # Evaluate through the pipeline: every token's label (nothing ignored), each word's from its first token.
    tagger = pipeline(args.framework)("token-classification", model=args.output_dir, ignore_labels=[])
    words = [s["words"] for s in evaluation]
    entities = tagger(words, is_split_into_words=True, batch_size=32)
    word_ids = tagger.tokenizer(words, is_split_into_words=True, truncation=True, max_length=args.max_length)
    predicted = [
        word_predictions([e["entity"] for e in found], [word_ids.word_ids(i)[e["index"]] for e in found], len(w), "O")
        for i, (found, w) in enumerate(zip(entities, words, strict=True))
    ]
    results = {}
    pairs = by_language(
        [s["language"] for s in evaluation], zip([s["tags"] for s in evaluation], predicted, strict=True)
    )
    for language, sentences in pairs.items():
        scores = entity_scores([true for true, _ in sentences], [guess for _, guess in sentences])
        results[language] = {**{k: 100 * v for k, v in scores.items()}, "count": len(sentences)}
    print_table(f"NER, entity-level ({args.framework}, {args.steps} steps)", results, ["precision", "recall", "f1"])
    print(f"\nsaved {args.output_dir}: pipeline('ner', model='{args.output_dir}', aggregation_strategy='first')")


if __name__ == "__main__":
    main()

"""Tokenizer speed: our RemBERT tokenizers against Hugging Face's, on the same sentencepiece model, in one run.

Three workloads, each timed as the best of several runs after a warm-up, printed with the ratio ours / theirs
(below 1 means ours is faster):

1. batch encoding: a few thousand lines of the multilingual sample (repeated and shuffled with a fixed seed)
   with ``padding=True, truncation=True, max_length=128, return_tensors="np"``; ours slow against Hugging
   Face's slow, ours fast against Hugging Face's fast;
2. question-answering windows: long documents (a few thousand tokens each) paired with questions, cut into
   windows with ``truncation="only_second", max_length=384, stride=128, return_overflowing_tokens=True,
   return_offsets_mapping=True, padding="max_length"``; both of ours against Hugging Face's fast tokenizer
   (its slow tokenizer has no offsets);
3. scaling: one long text of 0.25 MB and of 1 MB, ids and then ids with offsets; the time per MB stays flat
   when the work is linear in the length.

Each round of timing runs every side once, so that load from other work on the machine hits all sides alike.

Usage:
    python benchmarks/bench_tokenizers.py [--lines 4000] [--documents 64] [--repeats 5] [--model sentencepiece.model]

Without ``--model`` it trains the small test model on ``examples/data/multilingual.txt`` first.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "data" / "multilingual.txt"
BATCH_CALL = dict(padding=True, truncation=True, max_length=128, return_tensors="np")
QA_CALL = dict(truncation="only_second", max_length=384, stride=128, return_overflowing_tokens=True,
               return_offsets_mapping=True, padding="max_length")  # fmt: skip


def sample_lines() -> list[str]:
    return [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


def batch_of_lines(count: int, seed: int = 0) -> list[str]:
    """``count`` lines from the sample, repeated and shuffled deterministically."""
    lines = sample_lines()
    rng = random.Random(seed)
    batch = []
    while len(batch) < count:
        chunk = lines[:]
        rng.shuffle(chunk)
        batch += chunk
    return batch[:count]


def documents(count: int, lines_per_document: int = 60, seed: int = 1) -> tuple[list[str], list[str]]:
    """``count`` (question, long document) pairs built from the sample."""
    lines = batch_of_lines(count * lines_per_document, seed)
    contexts = [" ".join(lines[i * lines_per_document : (i + 1) * lines_per_document]) for i in range(count)]
    questions = [" ".join(line.split()[:6]) + "?" for line in batch_of_lines(count, seed + 1)]
    return questions, contexts


def best_times(functions: dict, repeats: int) -> dict:
    """Best wall time of each function over ``repeats`` rounds, after a warm-up round. Each round runs every
    function once, so a burst of load on the (shared) machine hits all sides alike."""
    for function in functions.values():
        function()
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def build_tokenizers(model: Path) -> dict:
    from transformers import RemBertTokenizer as HFSlow
    from transformers import RemBertTokenizerFast as HFFast

    from rembert_tokenize import RemBertTokenizer, RemBertTokenizerFast

    options = dict(do_lower_case=True, keep_accents=False, unk_token="<unk>", pad_token="<pad>")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "ours slow": RemBertTokenizer(model),
            "ours fast": RemBertTokenizerFast(vocab_file=model),
            "HF slow": HFSlow(vocab_file=str(model), **options),
            "HF fast": HFFast(vocab_file=str(model), from_slow=True, **options),
        }


def row(name: str, ours: float, theirs: float, target: float | None) -> str:
    ratio = ours / theirs
    verdict = "" if target is None else f"<= {target} {'ok' if ratio <= target else 'MISSED'}"
    return f"{name:28} {ours:10.4f} {theirs:10.4f} {ratio:8.3f}  {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=4000)
    parser.add_argument("--documents", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", type=Path, default=None, help="a sentencepiece.model (default: train one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from rembert_tokenize.testing import train_sentencepiece

            model = train_sentencepiece(SAMPLE, Path(tmp))
        tokenizers = build_tokenizers(model)
        lines = batch_of_lines(args.lines)
        questions, contexts = documents(args.documents)
        hf_fast = tokenizers["HF fast"]

        batch = best_times({name: lambda t=t: t(lines, **BATCH_CALL) for name, t in tokenizers.items()}, args.repeats)

        windows = hf_fast(questions, contexts, **QA_CALL)
        for name in ("ours slow", "ours fast"):
            assert dict(tokenizers[name](questions, contexts, **QA_CALL)) == dict(windows), name
        qa = best_times({name: lambda t=tokenizers[name]: t(questions, contexts, **QA_CALL)
                         for name in ("ours slow", "ours fast", "HF fast")}, args.repeats)  # fmt: skip

        text = " ".join(batch_of_lines(20000, seed=2))
        scaling = {}
        for size in (250_000, 1_000_000):
            piece = text[:size]
            calls = {}
            for name in ("ours slow", "ours fast", "HF fast"):
                tokenizer = tokenizers[name]
                calls[name, size, "ids"] = lambda t=tokenizer, p=piece: t(p)
                calls[name, size, "offsets"] = lambda t=tokenizer, p=piece: t(p, return_offsets_mapping=True)
            scaling.update(best_times(calls, 3))

    print(f"1. batch encoding: {args.lines} lines, {BATCH_CALL}")
    print(f"{'':28} {'ours (s)':>10} {'HF (s)':>10} {'ours/HF':>8}  target")
    print(row("fast vs HF fast", batch["ours fast"], batch["HF fast"], 1.0))
    print(row("slow vs HF slow", batch["ours slow"], batch["HF slow"], 0.8))
    tokens = sum(len(ids) for ids in windows["input_ids"])
    print(f"\n2. question-answering windows: {args.documents} documents -> {len(windows['input_ids'])} windows "
          f"({tokens} tokens), {QA_CALL}")  # fmt: skip
    print(f"{'':28} {'ours (s)':>10} {'HF (s)':>10} {'ours/HF':>8}  target")
    print(row("fast vs HF fast", qa["ours fast"], qa["HF fast"], 1.0))
    print(row("slow vs HF fast", qa["ours slow"], qa["HF fast"], None))
    print("\n3. one long text: seconds per MB at 0.25 MB and 1 MB (flat = linear)")
    print(f"{'':28} {'0.25 MB':>10} {'1 MB':>10} {'growth':>8}")
    for name in ("ours slow", "ours fast", "HF fast"):
        for what in ("ids", "offsets"):
            small = scaling[name, 250_000, what] / 0.25
            large = scaling[name, 1_000_000, what] / 1.0
            print(f"{name + ', ' + what:28} {small:10.3f} {large:10.3f} {large / small:8.2f}")


if __name__ == "__main__":
    main()

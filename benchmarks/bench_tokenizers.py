"""Batch-encoding speed: our RemBERT tokenizers against Hugging Face's, on the same sentencepiece model.

Encodes a few thousand lines of the multilingual sample (repeated and shuffled with a fixed seed) with
``padding=True, truncation=True, max_length=128, return_tensors="np"``, and prints the best of several
runs for ours and theirs, and the ratio (ours / theirs; below 1 means ours is faster).

Usage:
    python benchmarks/bench_tokenizers.py [--lines 4000] [--repeats 5] [--model path/to/sentencepiece.model]

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
CALL = dict(padding=True, truncation=True, max_length=128, return_tensors="np")


def batch_of_lines(count: int, seed: int = 0) -> list[str]:
    """``count`` lines from the sample, repeated and shuffled deterministically."""
    lines = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    batch = []
    while len(batch) < count:
        chunk = lines[:]
        rng.shuffle(chunk)
        batch += chunk
    return batch[:count]


def best_time(tokenize, lines: list[str], repeats: int) -> float:
    """Best wall time of ``repeats`` runs, after one warm-up run."""
    tokenize(lines, **CALL)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokenize(lines, **CALL)
        times.append(time.perf_counter() - start)
    return min(times)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=4000)
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
        seconds = {name: best_time(tokenizer, lines, args.repeats) for name, tokenizer in tokenizers.items()}

    print(f"{args.lines} lines, {CALL}")
    print(f"{'':6} {'ours (s)':>10} {'HF (s)':>10} {'ours/HF':>8}  target")
    for kind, target in (("fast", 1.0), ("slow", 0.8)):
        ours, theirs = seconds[f"ours {kind}"], seconds[f"HF {kind}"]
        ratio = ours / theirs
        verdict = "ok" if ratio <= target else "MISSED"
        print(f"{kind:6} {ours:10.4f} {theirs:10.4f} {ratio:8.3f}  <= {target} {verdict}")


if __name__ == "__main__":
    main()

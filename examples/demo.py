"""`make demo`: the tiny example checkpoint, tokenized text in several scripts, and PT -> TF -> PT conversion.

1. builds (once) `examples/tiny-rembert/`: a sentencepiece tokenizer trained on examples/data/multilingual.txt
   and a random masked-LM RemBERT whose vocabulary is the tokenizer's;
2. tokenizes one sentence per script (Latin, Cyrillic, Arabic, Devanagari, Han, Hangul...);
3. converts the checkpoint to TensorFlow and back with `rembert-convert ... --verify`, which builds PyTorch and
   TensorFlow models from each side and compares their outputs head by head;
4. checks that the round trip is bit-identical and runs the tokenized sentences through the PyTorch model from
   the round trip and the TensorFlow model from tf_model.h5;
5. prints a short report: tokens, max abs difference per head, files written.

    python examples/demo.py [--model-dir DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES.parent))  # run from a checkout without installing
sys.path.insert(0, str(EXAMPLES))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import build_tiny_checkpoint  # noqa: E402
import numpy as np  # noqa: E402

from conversion import ConversionReport, convert  # noqa: E402
from conversion.progress import human_bytes  # noqa: E402

# Unicode script (first word of the character names) -> how the report calls it.
SCRIPTS = {
    "LATIN": "Latin",
    "CYRILLIC": "Cyrillic",
    "ARABIC": "Arabic",
    "DEVANAGARI": "Devanagari",
    "CJK": "Han",
    "HANGUL": "Hangul",
    "GREEK": "Greek",
    "THAI": "Thai",
}
RULE = "-" * 78


def script_of(line: str) -> str | None:
    """The Unicode script most letters of a line belong to (by the first word of their character names)."""
    names = Counter(unicodedata.name(ch, "?").split()[0] for ch in line if ch.isalpha())
    return names.most_common(1)[0][0] if names else None


def sample_sentences(text_path: Path = build_tiny_checkpoint.TEXT) -> dict[str, str]:
    """The first line of the sample text in each script of SCRIPTS, in that order."""
    found: dict[str, str] = {}
    for line in text_path.read_text(encoding="utf-8").splitlines():
        script = script_of(line)
        if script in SCRIPTS and script not in found:
            found[script] = line.strip()
    return {script: found[script] for script in SCRIPTS if script in found}


def show_tokens(tokenizer, sentences: dict[str, str]) -> dict[str, list[int]]:
    print("1. tokens (RemBertTokenizerFast, the bundled sentencepiece model)")
    ids = {}
    for script, sentence in sentences.items():
        encoding = tokenizer(sentence)
        ids[script] = list(encoding["input_ids"])
        pieces = tokenizer.convert_ids_to_tokens(ids[script])
        print(f"  {SCRIPTS[script]:<11} {sentence}")
        print(f"  {'':<11} {' '.join(pieces)}  ({len(pieces)} tokens)")
    return ids


def run_conversion(step: str, src: Path, dst: Path, to: str) -> ConversionReport:
    print(f"{step} $ rembert-convert {src} {dst} --to {to} --verify --force")
    report = convert(src, dst, to=to, verify=True, force=True)
    print("\n".join("   " + line for line in report.lines()))
    if not report.verification.ok:
        raise SystemExit(f"demo: --verify failed for {dst}")
    return report


def padded_batch(ids: dict[str, list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    length = max(len(seq) for seq in ids.values())
    input_ids = np.full((len(ids), length), pad_id, dtype=np.int64)
    mask = np.zeros_like(input_ids)
    for row, seq in enumerate(ids.values()):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return input_ids, mask


def models_on_sentences(pt_dir: Path, tf_dir: Path, ids: dict[str, list[int]], pad_id: int) -> float:
    """Masked-LM logits of the sentences: PyTorch from the round-tripped model vs TensorFlow from tf_model.h5."""
    import tensorflow as tf
    import torch

    import rembert_pt
    import rembert_tf

    input_ids, mask = padded_batch(ids, pad_id)
    with torch.no_grad():
        pt_model = rembert_pt.RemBertForMaskedLM.from_pretrained(pt_dir)
        pt_logits = pt_model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)).logits
    tf_model = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tf_dir)
    tf_logits = tf_model(input_ids=tf.constant(input_ids), attention_mask=tf.constant(mask), training=False).logits
    attended = mask.astype(bool)
    difference = float(np.max(np.abs(pt_logits.numpy()[attended] - np.asarray(tf_logits)[attended])))
    print(f"4. the {len(ids)} sentences ({int(mask.sum())} tokens) through RemBertForMaskedLM (PyTorch, round trip)")
    print(f"   and TFRemBertForMaskedLM (TensorFlow, tf_model.h5): logits max abs difference {difference:.2g}")
    return difference


def summary(reports: dict[str, ConversionReport], identical: bool, sentence_difference: float) -> None:
    print(RULE)
    print("report")
    print(f"  round trip PT -> TF -> PT bit-identical (float32): {'yes' if identical else 'NO'}")
    print("  max abs difference per head (--verify: PyTorch and TensorFlow models from SRC and DST):")
    for step, report in reports.items():
        for head, value in report.verification.per_head().items():
            print(f"    {step:<10} {head:<10} {value:.2g}")
    print(f"    {'sentences':<10} {'masked_lm':<10} {sentence_difference:.2g}")
    print("  files written:")
    for report in reports.values():
        for path in report.files:
            print(f"    {path}  ({human_bytes(path.stat().st_size)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=build_tiny_checkpoint.DEFAULT_DIR)
    parser.add_argument("--out", type=Path, help="where the converted checkpoints go (default: a temporary dir)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    from rembert_tokenize import RemBertTokenizerFast

    model_dir, built = build_tiny_checkpoint.build(args.model_dir)
    print(RULE)
    print(f"tiny checkpoint {model_dir}: {'built' if built else 'up to date'}")
    print(f"  files: {', '.join(build_tiny_checkpoint.files(model_dir))}")
    tokenizer = RemBertTokenizerFast.from_pretrained(model_dir)
    print(RULE)
    ids = show_tokens(tokenizer, sample_sentences())
    with tempfile.TemporaryDirectory(prefix="rembert-demo-") as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        print(RULE)
        to_tf = run_conversion("2.", model_dir, out / "tiny-rembert-tf", "tf")
        print(RULE)
        to_pt = run_conversion("3.", out / "tiny-rembert-tf", out / "tiny-rembert-pt", "pt")
        identical = (out / "tiny-rembert-pt" / "model.safetensors").read_bytes() == (
            model_dir / "model.safetensors"
        ).read_bytes()
        print(RULE)
        difference = models_on_sentences(out / "tiny-rembert-pt", out / "tiny-rembert-tf", ids, tokenizer.pad_token_id)
        summary({"PT -> TF": to_tf, "TF -> PT": to_pt}, identical, difference)
        if args.out is None:
            print("  (in a temporary directory, removed now; pass --out DIR to keep them)")
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())

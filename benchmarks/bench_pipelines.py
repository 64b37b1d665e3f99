"""Pipeline throughput: our pipelines against Hugging Face's, on the same checkpoint directory, in one run.

Workloads (texts per second, best of several rounds after a warm-up; each round runs every side once, so load
from other work on the shared machine hits all sides alike):

1. text-classification: sentences of the multilingual sample (5 to 60 tokens);
2. token-classification with aggregation_strategy="first";
3. fill-mask, one mask per sentence, top_k=5;
4. question-answering on long contexts (about 2,000 tokens each) in windows of max_seq_len=384 with
   doc_stride=128: questions per second.

Ours (PyTorch, and TensorFlow) run with their default batch_size (8, rows sorted by length); Hugging Face's
PyTorch pipeline with its default (1) and with batch_size=8. The ratio is ours / Hugging Face in texts per
second (above 1: ours faster). Before timing, the results of both are checked to agree. Our TensorFlow
pipelines are timed in a child process (TensorFlow's thread pools would otherwise share the cores with
PyTorch's), against the Hugging Face figures of the same run.

The checkpoint is random (a tokenizer trained on the sample, weights from rembert_spec.testing) at one of three
sizes: `small` (4 layers, hidden 384; default: the pipelines' own work shows), `base` (12 layers, hidden 768)
or `full` (google/rembert: 32 layers, hidden 1152; 2.3 GB, slow on a laptop CPU).

    flock /tmp/rembert-bench.lock python benchmarks/bench_pipelines.py [--size small] [--texts 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("USE_TF", "0")  # Hugging Face: no TensorFlow in the PyTorch process (ours runs in a child)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "data" / "multilingual.txt"
SIZES = {
    "small": dict(hidden_size=384, num_hidden_layers=4, num_attention_heads=6, input_embedding_size=128,
                  output_embedding_size=256, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, input_embedding_size=256,
                 output_embedding_size=768, intermediate_size=3072),
    "full": dict(),
}  # fmt: skip
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
QA_CALL = dict(max_seq_len=384, doc_stride=128)


def lines(count: int, seed: int = 0) -> list[str]:
    sample = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng, chosen = random.Random(seed), []
    while len(chosen) < count:
        chunk = sample[:]
        rng.shuffle(chunk)
        chosen += chunk
    return chosen[:count]


def masked(texts: list[str]) -> list[str]:
    out = []
    for text in texts:
        words = text.split()
        words[len(words) // 2] = "[MASK]"
        out.append(" ".join(words))
    return out


def build(root: Path, size: str) -> dict[str, Path]:
    from rembert_spec import RemBertConfig
    from rembert_spec.testing import write_random_checkpoint
    from rembert_tokenize import RemBertTokenizerFast
    from rembert_tokenize.testing import train_sentencepiece

    (root / "spm").mkdir()
    model_file = train_sentencepiece(SAMPLE, root / "spm", vocab_size=2000, character_coverage=1.0)
    tokenizer = RemBertTokenizerFast(vocab_file=model_file, do_lower_case=False, keep_accents=True)
    directories = {}
    for head, labels in (("masked_lm", None), ("sequence_classification", ["a", "b", "c"]),
                         ("token_classification", NER_LABELS), ("question_answering", None)):  # fmt: skip
        directory = root / head
        tokenizer.save_pretrained(directory)
        config = RemBertConfig(
            **SIZES[size],
            **({"vocab_size": len(tokenizer)} if size != "full" else {}),
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            id2label=dict(enumerate(labels)) if labels else None,
        )
        write_random_checkpoint(directory, config, head, seed=0)
        directories[head] = directory
    return directories


def best_times(functions: dict, repeats: int) -> dict[str, float]:
    for function in functions.values():
        function()
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def machine() -> str:
    import torch

    flags = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        present = set(next(line for line in cpuinfo.splitlines() if line.startswith("flags")).split())
        flags = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in present)
    except (OSError, StopIteration):
        pass
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    seconds = min(_timed(lambda: a @ b) for _ in range(10))
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, vector features: {flags or 'unknown'}; float32 matmul "
        f"{2 * 2048**3 / seconds / 1e9:.0f} GFLOP/s"
    )


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-tf", action="store_true", help="skip our TensorFlow pipelines")
    parser.add_argument("--tf-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tf_child is not None:
        return _tf_child(args)

    import transformers

    from rembert_pt import pipeline as pt_pipeline

    transformers.logging.set_verbosity_error()
    logging.getLogger("rembert").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    print(machine())
    workloads = _workloads(args)
    texts, questions = workloads[0][2], workloads[3][2]

    with tempfile.TemporaryDirectory() as tmp:
        dirs = build(Path(tmp), args.size)
        tokenizer = transformers.AutoTokenizer.from_pretrained(dirs["question_answering"])
        tokens = sum(len(tokenizer(q["context"])["input_ids"]) for q in questions) / len(questions)
        print(f"model size {args.size}; {len(texts)} texts; {len(questions)} questions over contexts of "
              f"{tokens:.0f} tokens on average, windows {QA_CALL}\n")  # fmt: skip
        header = f"{'':40} {'texts/s':>9} {'HF b=1':>9} {'HF b=8':>9} {'vs b=1':>7} {'vs b=8':>7}"
        print(header)
        hf_rates = {}
        for name, head, inputs, kwargs in workloads:
            task = name.split(" ")[0]
            hf = transformers.pipeline(task, model=str(dirs[head]), framework="pt")
            sides = {"ours pt": pt_pipeline(task, model=dirs[head])}
            check = inputs[:8]
            ours_result, hf_result = sides["ours pt"](check, **kwargs), hf(check, **kwargs)
            if task != "question-answering":
                assert _labels(ours_result) == _labels(hf_result), f"{task}: ours and Hugging Face disagree"
            else:
                ours_result, hf_result = ([r] if isinstance(r, dict) else r for r in (ours_result, hf_result))
                assert [a["answer"] for a in ours_result] == [a["answer"] for a in hf_result], task
            functions = {f"HF b={b}": _call(hf, inputs, kwargs, batch_size=b) for b in (1, 8)}
            functions |= {side: _call(pipe, inputs, kwargs) for side, pipe in sides.items()}
            times = best_times(functions, args.repeats)
            rate = {side: len(inputs) / seconds for side, seconds in times.items()}
            hf_rates[name] = rate
            _row(name, "ours pt", rate["ours pt"], rate)
        if not args.no_tf:
            json_path = Path(tmp) / "tf.json"
            sizes = ["--size", args.size, "--texts", str(args.texts), "--questions", str(args.questions)]
            command = [sys.executable, __file__, "--tf-child", str(json_path), *sizes, "--repeats", str(args.repeats)]
            subprocess.run(command, check=True, env={**os.environ, "BENCH_PIPELINES_DIRS": tmp})
            for name, rate in json.loads(json_path.read_text()).items():
                _row(name, "ours tf", rate, hf_rates[name])


def _row(name: str, side: str, ours: float, hf: dict[str, float]) -> None:
    print(f"{name + ', ' + side:40} {ours:9.1f} {hf['HF b=1']:9.1f} {hf['HF b=8']:9.1f} "
          f"{ours / hf['HF b=1']:6.2f}x {ours / hf['HF b=8']:6.2f}x", flush=True)  # fmt: skip


def _workloads(args: argparse.Namespace) -> list[tuple[str, str, list, dict]]:
    texts = lines(args.texts)
    contexts = [" ".join(lines(70, seed=100 + i)) for i in range(args.questions)]
    questions = [{"question": " ".join(text.split()[:6]) + "?", "context": context}
                 for text, context in zip(lines(args.questions, seed=7), contexts, strict=True)]  # fmt: skip
    return [
        ("text-classification", "sequence_classification", texts, {}),
        ("token-classification", "token_classification", texts, {"aggregation_strategy": "first"}),
        ("fill-mask", "masked_lm", masked(texts), {"top_k": 5}),
        ("question-answering (long contexts)", "question_answering", questions, QA_CALL),
    ]


def _tf_child(args: argparse.Namespace) -> None:
    """Our TensorFlow pipelines on the parent's checkpoints; texts per second written as JSON."""
    from rembert_tf import pipeline as tf_pipeline

    logging.getLogger("rembert").setLevel(logging.ERROR)
    root = Path(os.environ["BENCH_PIPELINES_DIRS"])
    rates = {}
    for name, head, inputs, kwargs in _workloads(args):
        pipe = tf_pipeline(name.split(" ")[0], model=root / head)
        seconds = best_times({"tf": _call(pipe, inputs, kwargs)}, args.repeats)["tf"]
        rates[name] = len(inputs) / seconds
    args.tf_child.write_text(json.dumps(rates))


def _call(pipe, inputs: list, kwargs: dict, **more):
    return lambda: pipe(inputs, **kwargs, **more)


def _labels(results: list) -> list:
    """What must agree between the two: labels, entities, tokens (scores are checked by the tests)."""
    out = []
    for result in results:
        if isinstance(result, dict):
            out.append(result.get("label"))
        else:
            out.append([(r.get("entity_group"), r.get("start"), r.get("token")) for r in result])
    return out


if __name__ == "__main__":
    main()

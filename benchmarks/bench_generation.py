"""Generation: RemBertForCausalLM at full google/rembert size, batch 1, with the cache, ours (`model.generate`) vs
Hugging Face's `generate`, greedy (64 new tokens) and beam search (4 beams, 32 new tokens).

Random weights. Each side runs in its own process (one 4 GB model in memory at a time), warms up, then times
`--repeats` generations of each kind and keeps the best. Prints tokens/s for each (new tokens of the returned
sequence per second) and the ratios (targets: greedy >= 1.2x Hugging Face's, beam search >= 1.0x), and checks that
both sides produce the same tokens (min_new_tokens on both sides, so neither stops at an end-of-sequence id) and,
for beam search, the same sequence scores within 1e-4.

    flock /tmp/rembert-bench.lock env PYTHONPATH=$PWD python benchmarks/bench_generation.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import full_size_checkpoint, ratio_line, run_child  # noqa: E402

PROMPT_LENGTH = 8

CHILD = """
import json, sys, time
import torch
sys.path.insert(0, {root!r})
directory, repeats = {directory!r}, {repeats}
prompt = torch.randint(5, 250000, (1, {prompt_length}), generator=torch.Generator().manual_seed(0))
mask = torch.ones_like(prompt)
if {ours}:
    from rembert_pt import RemBertForCausalLM
    model = RemBertForCausalLM.from_pretrained(directory, is_decoder=True)
else:
    import transformers
    transformers.logging.set_verbosity_error()
    model = transformers.RemBertForCausalLM.from_pretrained(directory, is_decoder=True).eval()
runs = {{
    "greedy": dict(max_new_tokens={greedy_tokens}, min_new_tokens={greedy_tokens}),
    "beam": dict(
        max_new_tokens={beam_tokens}, min_new_tokens={beam_tokens}, num_beams={beams},
        return_dict_in_generate=True, output_scores=True,
    ),
}}
results = {{}}
with torch.no_grad():
    model.generate(prompt, attention_mask=mask, do_sample=False, max_new_tokens=4)  # warm-up: touch every weight
    for name, kwargs in runs.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = model.generate(prompt, attention_mask=mask, do_sample=False, **kwargs)
            times.append(time.perf_counter() - start)
        if name == "beam":
            results[name] = dict(times=times, tokens=out.sequences.tolist(), scores=out.sequences_scores.tolist())
        else:
            results[name] = dict(times=times, tokens=out.tolist())
print(json.dumps(dict(results, threads=torch.get_num_threads())))
"""

MACHINE = """
import json, time
import torch
flags = set()
for line in open("/proc/cpuinfo"):
    if line.startswith("flags"):
        flags = set(line.split(":", 1)[1].split())
        break
wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"]
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
a @ b
start = time.perf_counter()
for _ in range(5):
    a @ b
gflops = 5 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9
print(json.dumps({"flags": [f for f in wanted if f in flags], "gflops": gflops, "threads": torch.get_num_threads()}))
"""


def measure(ours: bool, directory: Path, args: argparse.Namespace) -> dict:
    code = CHILD.format(
        root=str(Path(__file__).resolve().parent.parent),
        directory=str(directory),
        repeats=args.repeats,
        prompt_length=PROMPT_LENGTH,
        greedy_tokens=args.new_tokens,
        beam_tokens=args.beam_tokens,
        beams=args.beams,
        ours=ours,
    )
    return run_child(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-tokens", type=int, default=64, help="greedy: new tokens")
    parser.add_argument("--beam-tokens", type=int, default=32, help="beam search: new tokens")
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    machine = run_child(MACHINE)
    print(
        f"CPU: {' '.join(machine['flags'])}; fp32 matmul {machine['gflops']:.0f} GFLOP/s, {machine['threads']} threads"
    )
    directory = full_size_checkpoint("causal_lm", is_decoder=True)
    ours = measure(True, directory, args)
    theirs = measure(False, directory, args)
    print(f"prompt {PROMPT_LENGTH} tokens, batch 1, float32, {ours['threads']} threads")
    for name, n, what, target in [
        ("greedy", args.new_tokens, f"greedy generation, {args.new_tokens} new tokens", ">= 1.20x"),
        ("beam", args.beam_tokens, f"beam search ({args.beams} beams), {args.beam_tokens} new", ">= 1.00x"),
    ]:
        mine, reference = ours[name], theirs[name]
        t_ours, t_theirs = min(mine["times"]), min(reference["times"])
        for side, times, t_best in (("ours", mine["times"], t_ours), ("HF  ", reference["times"], t_theirs)):
            print(f"{name:6} {side} times {', '.join(f'{t:.2f}' for t in times)} s -> best {n / t_best:.2f} tok/s")
        print(ratio_line(what, n / t_ours, n / t_theirs, "tok/s", target))
        identical = mine["tokens"] == reference["tokens"]
        print(f"{name:6} generated tokens identical: {identical}")
        assert len(mine["tokens"][0]) == PROMPT_LENGTH + n, len(mine["tokens"][0])
        assert identical, f"tokens differ:\nours   {mine['tokens']}\ntheirs {reference['tokens']}"
        if name == "beam":
            gap = max(abs(a - b) for a, b in zip(mine["scores"], reference["scores"], strict=True))
            print(f"beam   sequences_scores max difference: {gap:.2e}")
            assert gap < 1e-4, gap


if __name__ == "__main__":
    main()

"""Greedy generation: RemBertForCausalLM at full google/rembert size, batch 1, 64 new tokens with the cache,
ours (`model.generate`) vs Hugging Face's `generate`.

Random weights. Each side runs in its own process (one 4 GB model in memory at a time), warms up, then times
`--repeats` generations and keeps the best. Prints tokens/s for each and the ratio (target: ours >= 1.2x Hugging
Face's), and checks that both produce the same 64 tokens (min_new_tokens=64 on both sides, so neither stops at an
end-of-sequence id).
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
directory, new_tokens, repeats = {directory!r}, {new_tokens}, {repeats}
prompt = torch.randint(5, 250000, (1, {prompt_length}), generator=torch.Generator().manual_seed(0))
mask = torch.ones_like(prompt)
if {ours}:
    from rembert_pt import RemBertForCausalLM
    model = RemBertForCausalLM.from_pretrained(directory, is_decoder=True)
    kwargs = dict()
else:
    import transformers
    transformers.logging.set_verbosity_error()
    model = transformers.RemBertForCausalLM.from_pretrained(directory, is_decoder=True).eval()
    kwargs = dict(do_sample=False)
kwargs.update(attention_mask=mask)
with torch.no_grad():
    model.generate(prompt, max_new_tokens=4, **kwargs)  # warm-up: touch every weight
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
        times.append(time.perf_counter() - start)
print(json.dumps({{"times": times, "tokens": out.tolist(), "threads": torch.get_num_threads()}}))
"""


def measure(ours: bool, directory: Path, new_tokens: int, repeats: int) -> dict:
    root = str(Path(__file__).resolve().parent.parent)
    code = CHILD.format(
        root=root,
        directory=str(directory),
        new_tokens=new_tokens,
        repeats=repeats,
        prompt_length=PROMPT_LENGTH,
        ours=ours,
    )
    return run_child(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    directory = full_size_checkpoint("causal_lm", is_decoder=True)
    n = args.new_tokens
    ours = measure(True, directory, n, args.repeats)
    theirs = measure(False, directory, n, args.repeats)
    t_ours, t_theirs = min(ours["times"]), min(theirs["times"])
    identical = ours["tokens"] == theirs["tokens"]
    print(f"prompt {PROMPT_LENGTH} tokens, {n} new tokens, batch 1, greedy, float32, {ours['threads']} threads")
    print(f"ours  times {', '.join(f'{t:.2f}' for t in ours['times'])} s -> best {n / t_ours:.2f} tokens/s")
    print(f"HF    times {', '.join(f'{t:.2f}' for t in theirs['times'])} s -> best {n / t_theirs:.2f} tokens/s")
    print(ratio_line(f"greedy generation, {n} new tokens", n / t_ours, n / t_theirs, "tok/s", ">= 1.20x"))
    print(f"generated tokens identical: {identical}")
    assert len(ours["tokens"][0]) == PROMPT_LENGTH + n, len(ours["tokens"][0])
    assert identical, f"tokens differ:\nours   {ours['tokens']}\ntheirs {theirs['tokens']}"


if __name__ == "__main__":
    main()

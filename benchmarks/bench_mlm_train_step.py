"""One masked-LM training step (forward + backward), batch 4 x 256, 15% of positions labelled, full size.

Each side runs in its own process so that peak memory (RSS) is its own. Targets: memory <= 0.75x Hugging Face,
time <= 0.9x. The losses must agree (same weights, same batch).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import full_size_checkpoint, ratio_line, run_child  # noqa: E402

CHILD = """
import json, time, resource, torch
torch.manual_seed(0)
ids = torch.randint(5, 250000, (4, 256))
labels = torch.full_like(ids, -100)
chosen = torch.rand(ids.shape) < 0.15
labels[chosen] = ids[chosen]
if {ours!r}:
    from rembert_pt import RemBertForMaskedLM
else:
    from transformers import RemBertForMaskedLM
model = RemBertForMaskedLM.from_pretrained({directory!r})
model.train()
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
loss = model(input_ids=ids, labels=labels).loss
loss.backward()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(seconds=seconds, loss=float(loss), peak_rss_mb=peak, loaded_rss_mb=loaded)))
"""


def main() -> None:
    directory = str(full_size_checkpoint("masked_lm"))
    theirs = run_child(CHILD.format(ours=False, directory=directory))
    ours = run_child(CHILD.format(ours=True, directory=directory))
    print(ratio_line("MLM train step time", ours["seconds"], theirs["seconds"], "s", "<= 0.90x"))
    print(ratio_line("MLM train step peak RSS", ours["peak_rss_mb"], theirs["peak_rss_mb"], "MB", "<= 0.75x"))
    print(f"losses: ours {ours['loss']:.6f}, HF {theirs['loss']:.6f}")
    assert abs(ours["loss"] - theirs["loss"]) < 1e-4, "losses differ"


if __name__ == "__main__":
    main()

"""One masked-LM training step (forward + backward), batch 4 x 256, 15% of positions labelled, full size.

Three sides, each in its own process so that peak memory (RSS) is its own: Hugging Face; ours with
`sparse_prediction=True`, the opt-in a training loop that reads only the loss should use (the vocabulary head runs
at the labelled positions only); and ours by default, which returns Hugging Face's full [batch, length, vocab]
logits. Targets for the opt-in: memory <= 0.75x Hugging Face, time <= 0.9x; the default path must not be worse
than Hugging Face. The losses must agree (same weights, same batch).
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
if {side!r} == "hf":
    from transformers import RemBertForMaskedLM
    model = RemBertForMaskedLM.from_pretrained({directory!r})
else:
    from rembert_pt import RemBertForMaskedLM
    model = RemBertForMaskedLM.from_pretrained({directory!r}, sparse_prediction={side!r} == "sparse")
model.train()
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
out = model(input_ids=ids, labels=labels)
out.loss.backward()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
shape = list(out.logits.shape)
print(json.dumps(dict(seconds=seconds, loss=float(out.loss), peak_rss_mb=peak, loaded_rss_mb=loaded, logits=shape)))
"""


def main() -> None:
    directory = str(full_size_checkpoint("masked_lm"))
    theirs = run_child(CHILD.format(side="hf", directory=directory))
    sparse = run_child(CHILD.format(side="sparse", directory=directory))
    default = run_child(CHILD.format(side="default", directory=directory))
    print(ratio_line("MLM step time, sparse_prediction", sparse["seconds"], theirs["seconds"], "s", "<= 0.90x"))
    print(
        ratio_line(
            "MLM step peak RSS, sparse_prediction", sparse["peak_rss_mb"], theirs["peak_rss_mb"], "MB", "<= 0.75x"
        )
    )
    print(ratio_line("MLM step time, default", default["seconds"], theirs["seconds"], "s", "<= 1.00x"))
    print(ratio_line("MLM step peak RSS, default", default["peak_rss_mb"], theirs["peak_rss_mb"], "MB", "<= 1.00x"))
    print(f"logits: HF {theirs['logits']}, default {default['logits']}, sparse_prediction {sparse['logits']}")
    print(f"losses: HF {theirs['loss']:.6f}, default {default['loss']:.6f}, sparse_prediction {sparse['loss']:.6f}")
    assert default["logits"] == theirs["logits"], "the default must return Hugging Face's logits shape"
    for side in (sparse, default):
        assert abs(side["loss"] - theirs["loss"]) < 1e-4, "losses differ"


if __name__ == "__main__":
    main()

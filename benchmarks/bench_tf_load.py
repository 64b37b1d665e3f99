"""TensorFlow load, whole process: import, from_pretrained(tf_model.h5), one short forward. Full size.

Each side runs in a fresh process (imports included); target: ours <= 0.2x Hugging Face's wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import full_size_checkpoint, ratio_line, run_child  # noqa: E402

CHILD = """
import json, resource
import numpy as np
if {ours!r}:
    from rembert_tf import TFRemBertModel
else:
    from transformers import TFRemBertModel
model = TFRemBertModel.from_pretrained({directory!r})
out = model(input_ids=np.array([[312, 5, 6, 7, 313]], np.int32))
print(json.dumps(dict(checksum=float(np.asarray(out.last_hidden_state, np.float64).sum()),
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def main() -> None:
    directory = str(full_size_checkpoint("base", fmt="tf_h5"))
    run_child(CHILD.format(ours=True, directory=directory))  # warm the page cache for both
    theirs = run_child(CHILD.format(ours=False, directory=directory))
    ours = run_child(CHILD.format(ours=True, directory=directory))
    print(ratio_line("TF load (import+load+forward)", ours["wall_s"], theirs["wall_s"], "s", "<= 0.20x"))
    print(ratio_line("TF load peak RSS", ours["peak_rss_mb"], theirs["peak_rss_mb"], "MB", "-"))
    assert abs(ours["checksum"] - theirs["checksum"]) < 1e-2, (ours["checksum"], theirs["checksum"])


if __name__ == "__main__":
    main()

"""Build the bundled tiny example checkpoint: a sentencepiece tokenizer and a random masked-LM RemBERT.

The tokenizer is trained on `examples/data/multilingual.txt` (deterministically: one thread, fixed seed); the
model's vocab_size is the tokenizer's size and its weights come from `write_random_checkpoint(..., seed=0)`.
The directory is assembled beside its destination and moved into place only when complete, and rebuilt only
when the recipe or the text changed (a `.build-recipe.json` beside the files says which recipe made them).

    python examples/build_tiny_checkpoint.py [DIR]      # default examples/tiny-rembert
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES.parent))  # run from a checkout without installing

from conversion import TOKENIZER_FILES  # noqa: E402
from conversion.staging import Staging  # noqa: E402
from rembert_spec import RemBertConfig  # noqa: E402
from rembert_spec.testing import write_random_checkpoint  # noqa: E402

DEFAULT_DIR = EXAMPLES / "tiny-rembert"
TEXT = EXAMPLES / "data" / "multilingual.txt"
RECIPE_FILE = ".build-recipe.json"
HEAD = "masked_lm"
SEED = 0
# Every character of the sample text gets a piece (coverage 1.0), so the demo sentences have no <unk>.
SENTENCEPIECE = {"vocab_size": 2000, "normalization": "nmt_nfkc", "seed": SEED, "character_coverage": 1.0}
TOKENIZER = {"do_lower_case": False, "keep_accents": True}
MODEL = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "input_embedding_size": 16,
    "output_embedding_size": 24,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    "pad_token_id": 0,
    "bos_token_id": 2,  # [CLS]
    "eos_token_id": 3,  # [SEP]
}


def recipe() -> dict:
    """Everything the files depend on; a change means a rebuild."""
    text_hash = hashlib.sha256(TEXT.read_bytes()).hexdigest()
    return {"text_sha256": text_hash, "sentencepiece": SENTENCEPIECE, "tokenizer": TOKENIZER, "model": MODEL}


def is_current(directory: Path) -> bool:
    """The directory holds a complete build of the current recipe."""
    try:
        built = json.loads((directory / RECIPE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    needed = ["config.json", "model.safetensors", "sentencepiece.model", "tokenizer.json"]
    return built == recipe() and all((directory / name).is_file() for name in needed)


def _write(directory: Path) -> None:
    from rembert_tokenize import RemBertTokenizerFast
    from rembert_tokenize.testing import train_sentencepiece

    model_file = train_sentencepiece(TEXT, directory, **SENTENCEPIECE)
    tokenizer = RemBertTokenizerFast(vocab_file=model_file, **TOKENIZER)
    tokenizer.save_pretrained(directory)
    config = RemBertConfig(vocab_size=tokenizer.vocab_size, **MODEL)
    write_random_checkpoint(directory, config, head=HEAD, seed=SEED)
    (directory / RECIPE_FILE).write_text(json.dumps(recipe(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build(directory: str | Path = DEFAULT_DIR, force: bool = False) -> tuple[Path, bool]:
    """Make sure `directory` holds the tiny checkpoint; returns (directory, whether it was built now)."""
    directory = Path(directory)
    if not force and is_current(directory):
        return directory, False
    staging = Staging.create(directory)
    try:
        _write(staging.path)
        staging.install()
    except BaseException:
        staging.discard()
        raise
    return directory, True


def files(directory: Path) -> list[str]:
    """The checkpoint's files, in the order a reader cares about."""
    names = ["config.json", "model.safetensors", *TOKENIZER_FILES]
    return [name for name in names if (Path(directory) / name).is_file()]


if __name__ == "__main__":
    target, built = build(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DIR, force="--force" in sys.argv)
    print(f"{target}: {'built' if built else 'up to date'} ({', '.join(files(target))})")

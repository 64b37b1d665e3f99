"""Task checkpoints for the pipeline tests: one tokenizer trained on the shipped multilingual text, and a tiny random
model per head saved beside it, in Hugging Face's layout (so Hugging Face's pipelines load the same directory).

Weights are drawn with a large initializer_range so that scores spread out: the comparisons then decide between
clearly different candidates instead of near-ties.
"""

from __future__ import annotations

import logging
import warnings
from functools import cache
from pathlib import Path

import pytest

from rembert_spec import RemBertConfig
from rembert_spec.testing import write_random_checkpoint

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data" / "multilingual.txt"
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
NLI_LABELS = ["entailment", "neutral", "contradiction"]
HEADS = {
    "masked_lm": None,
    "sequence_classification": NLI_LABELS,
    "token_classification": NER_LABELS,
    "question_answering": None,
}
MAX_POSITIONS = 64

# Contexts several windows long, in several scripts, with accents, CJK and runs of spaces.
LONG_CONTEXT = (
    "Le chat dort sur le canapé depuis ce matin. The quick brown fox jumps over the lazy dog, then naps under "
    "the old oak tree. Our train leaves at 7:45 from platform 3;   please be there ten minutes early. "
    "東京は日本の首都です。 Москва — столица России. Die Katze schläft auf dem Sofa seit heute Morgen. "
    "The café on the corner serves crème brûlée and a decent piña colada."
)
QA_EXAMPLES = [
    {"question": "Where does the cat sleep?", "context": LONG_CONTEXT},
    {"question": "Wann fährt der Zug?", "context": LONG_CONTEXT + " " + LONG_CONTEXT},
    {"question": "首都はどこですか？", "context": "東京は日本の首都です。 大阪は大きな都市です。"},
    {"question": "Qui sert la crème brûlée ?", "context": "Naïve   coöperation   was the theme. " + LONG_CONTEXT},
]
TEXTS = [
    "Angela Merkel besuchte São Paulo und Köln.",
    "Multiple     spaces   appear    between    these words.",
    "東京 タワー は 高い です。",
    "Москва — столица России, сказал Иван Петров.",
    "The café on the corner serves crème brûlée ¾ cup.",
    "OK",
]
MASKED = [
    "Le chat dort sur le [MASK] depuis ce matin.",
    "東京は[MASK]の首都です。[MASK]",
    "Grüße [MASK] Köln!",
    "[MASK]",
]
PAIRS = [
    {"text": "Le chat dort.", "text_pair": "The cat sleeps."},
    {"text": "Москва — столица России.", "text_pair": "東京は日本の首都です。"},
    {"text": "Wait... did you really say that?!"},
]


@cache
def _task_checkpoints(root: Path) -> dict[str, Path]:
    from rembert_tokenize import RemBertTokenizerFast
    from rembert_tokenize.testing import train_sentencepiece

    spm_dir = root / "spm"
    spm_dir.mkdir()
    model_file = train_sentencepiece(SAMPLE, spm_dir, vocab_size=2000, character_coverage=1.0)
    tokenizer = RemBertTokenizerFast(vocab_file=model_file, do_lower_case=False, keep_accents=True)
    directories = {}
    for head, labels in HEADS.items():
        directory = root / head
        tokenizer.save_pretrained(directory)
        config = RemBertConfig(
            vocab_size=len(tokenizer),
            hidden_size=24,
            num_hidden_layers=2,
            num_attention_heads=2,
            input_embedding_size=16,
            output_embedding_size=16,
            intermediate_size=32,
            max_position_embeddings=MAX_POSITIONS,
            initializer_range=0.3,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            id2label=dict(enumerate(labels)) if labels else None,
        )
        write_random_checkpoint(directory, config, head, seed=7)
        directories[head] = directory
    return directories


@pytest.fixture(scope="session")
def task_dirs(tmp_path_factory) -> dict[str, Path]:
    """{head: directory} of tiny random checkpoints sharing one tokenizer."""
    return _task_checkpoints(tmp_path_factory.mktemp("task-checkpoints"))


_PIPELINES: dict = {}


def ours(framework: str, task: str, directory: Path, **kwargs):
    """Our pipeline (cached per framework, task and checkpoint: building a Keras model takes a while)."""
    key = (framework, task, directory, tuple(sorted(kwargs.items())))
    if key not in _PIPELINES:
        if framework == "pt":
            from rembert_pt import pipeline
        else:
            from rembert_tf import pipeline
        logging.getLogger("rembert").setLevel(logging.ERROR)  # unused LM weights when loading the backbone
        _PIPELINES[key] = pipeline(task, model=directory, **kwargs)
    return _PIPELINES[key]


def hugging_face(task: str, directory: Path):
    """Hugging Face's PyTorch pipeline on the same directory (its model and its fast tokenizer)."""
    key = ("hf", task, directory)
    if key not in _PIPELINES:
        import transformers

        transformers.logging.set_verbosity_error()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _PIPELINES[key] = transformers.pipeline(task, model=str(directory), framework="pt")
    return _PIPELINES[key]


def assert_same(ours_result, theirs, atol: float = 1e-5, path: str = "result") -> None:
    """Equal structure, keys, strings and integers; floats within atol."""
    import numpy as np

    if isinstance(theirs, dict):
        assert isinstance(ours_result, dict) and list(ours_result) == list(theirs), (path, ours_result, theirs)
        for key in theirs:
            assert_same(ours_result[key], theirs[key], atol, f"{path}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours_result, (list, tuple)), (path, ours_result, theirs)
        assert len(ours_result) == len(theirs), (path, len(ours_result), len(theirs), ours_result, theirs)
        for index, (a, b) in enumerate(zip(ours_result, theirs, strict=True)):
            assert_same(a, b, atol, f"{path}[{index}]")
    elif isinstance(theirs, (float, np.floating)):
        assert isinstance(ours_result, (float, np.floating)), (path, ours_result, theirs)
        assert abs(float(ours_result) - float(theirs)) <= atol, (path, ours_result, theirs)
    elif isinstance(theirs, np.ndarray):
        np.testing.assert_allclose(ours_result, theirs, atol=atol, err_msg=path)
    else:
        assert ours_result == theirs, (path, ours_result, theirs)
        assert isinstance(ours_result, (str, int, type(None))), (path, type(ours_result))  # plain Python values

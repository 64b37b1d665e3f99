"""`make mutate`: do the tests catch the bugs a careless change would make?

Each mutation below is one realistic bug: a file, an exact snippet of its code, what replaces it, a one-line
description, and the tests that should catch it. The tool copies the repository to a temporary directory, applies
the mutations there one at a time, runs their tests (`pytest -x`, without the slow ones) and reports each as
killed (a test failed) or survived, with a score. A snippet must occur exactly once in its file: when a refactor
moves or rewrites the code it names, the mutation is reported stale and the run fails before any test runs, rather
than silently testing nothing. The repository itself is never modified.

    python tools/mutate.py              # every mutation (several minutes; run it on a quiet machine)
    python tools/mutate.py --check      # only check that every snippet is still found
    python tools/mutate.py --list       # the curated list
    python tools/mutate.py -k dropout   # the mutations whose description or file contains "dropout"

Exit status: 0 when every mutation was killed, 1 when one survived or was stale, 2 when the unmutated tests fail.
Not part of `make test`: a full run takes far longer than the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", ".hypothesis", ".pytest_cache", ".ruff_cache"
)


@dataclass(frozen=True)
class Edit:
    """Replace the one occurrence of `snippet` in `file` (relative to the repository) by `replacement`."""

    file: str
    snippet: str
    replacement: str


@dataclass(frozen=True)
class Mutation:
    """One realistic bug: its edits (usually one), what it stands for, and the test paths that should catch it."""

    description: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]

    @property
    def files(self) -> str:
        return ", ".join(dict.fromkeys(edit.file for edit in self.edits))


def mutation(file: str, snippet: str, replacement: str, description: str, tests: tuple[str, ...]) -> Mutation:
    """The usual mutation: one edit."""
    return Mutation(description, (Edit(file, snippet, replacement),), tests)


class StaleMutation(Exception):
    """A mutation's snippet is not in its file exactly once: the code it names has changed."""


# -- the test subsets each mutation runs (fast: each a few seconds to a minute on a quiet machine) ----------------

SPEC = ("tests/spec",)
PT_ORACLE = ("tests/pt/test_realistic_scale.py", "tests/pt/test_eval_determinism.py", "tests/pt/test_oracle.py")
PT = (*PT_ORACLE, "tests/pt/test_modeling.py", "tests/equivalence/test_errors.py")
TF_ORACLE = ("tests/tf/test_realistic_scale.py", "tests/tf/test_eval_determinism.py", "tests/tf/test_oracle.py")
TF = (*TF_ORACLE, "tests/tf/test_modeling.py", "tests/equivalence/test_errors.py")
TOKENIZE = ("tests/tokenize",)
CONVERSION = (
    "tests/conversion/test_atomic_install.py",
    "tests/conversion/test_verify_tolerance.py",
    "tests/conversion/test_cli.py",
    "tests/conversion/test_writers.py",
    "tests/conversion/test_verify.py",
    "tests/conversion/test_atomic.py",
)
TASKS = ("tests/tasks/test_postprocessing.py", "tests/tasks/test_pipeline_api.py", "tests/tasks/test_oracle.py")

EDGES = "tests/pt/test_loading_and_generation_edges.py"  # loading and generation edges the shared logic decides
GENERATION = (EDGES, "tests/pt/test_generation.py", "tests/tf/test_generation.py")

MODELING_PT = "rembert_pt/modeling.py"
MODELING_TF = "rembert_tf/modeling.py"

MUTATIONS: tuple[Mutation, ...] = (
    # -- the three survivors and the four weak kills of issue #19 ---------------------------------------------------
    mutation(
        MODELING_PT,
        '"gelu": F.gelu,',
        '"gelu": lambda x: F.gelu(x, approximate="tanh"),',
        '"gelu" silently mapped to the tanh approximation (gelu_new) in PyTorch',
        PT_ORACLE,
    ),
    mutation(
        MODELING_PT,
        "dropout = self.dropout_prob if self.training else 0.0",
        "dropout = self.dropout_prob",
        "PyTorch attention dropout applied in eval mode (fused attention path)",
        PT,
    ),
    mutation(
        "rembert_spec/formats/safetensors.py",
        "    for name, desc in header.items():\n        entries[name] = _parse_entry(path, name, desc, data_start)\n",
        "    position = data_start\n"
        "    for name, desc in header.items():\n"
        "        entry = _parse_entry(path, name, desc, data_start)\n"
        "        entries[name] = _Entry(entry.info, position, position + entry.end - entry.begin)\n"
        "        position = entries[name].end\n",
        "safetensors reader ignores data_offsets: assumes the data follow the header's order",
        SPEC,
    ),
    mutation(
        "rembert_spec/checkpoint.py",
        "return array.T if format_.transposed and entry.tf_transpose else array",
        "return array.T if format_.transposed and array.shape != entry.tf_shape else array",
        "writer transposes a kernel only when its shape needs it: square kernels keep PyTorch's layout in TF files",
        SPEC,
    ),
    Mutation(
        "the converter writes straight into DST (no staging directory), replacing files in place",
        (
            Edit(
                "conversion/staging.py",
                "        dst.parent.mkdir(parents=True, exist_ok=True)\n"
                "        path = Path(tempfile.mkdtemp(prefix=_stage_name(dst, TMP_MARKER), dir=dst.parent))\n"
                "        return cls(dst, path)\n",
                "        dst.mkdir(parents=True, exist_ok=True)\n        return cls(dst, dst)\n",
            ),
            Edit(
                "conversion/staging.py",
                "        self._settle_permissions()\n        if is_empty(self.dst):\n",
                "        self._settle_permissions()\n        if self.path == self.dst:\n"
                "            return\n        if is_empty(self.dst):\n",
            ),
            Edit(
                "conversion/staging.py",
                "    def discard(self) -> None:\n        _remove(self.path)\n",
                "    def discard(self) -> None:\n        if self.path != self.dst:\n            _remove(self.path)\n",
            ),
        ),
        CONVERSION,
    ),
    mutation(
        "conversion/verify.py",
        'TOLERANCES = {"lossless": 1e-4,',
        'TOLERANCES = {"lossless": 1e-3,',
        "--verify's default tolerance for lossless conversions loosened tenfold",
        ("tests/conversion/test_verify_tolerance.py",),  # by behaviour only: test_verify.py pins the constant
    ),
    mutation(
        MODELING_TF,
        "logits = self.classifier(self.dropout(outputs.pooler_output, training=training))\n"
        "        loss = None if labels is None",
        "logits = self.classifier(self.dropout(outputs.pooler_output, training=True))\n"
        "        loss = None if labels is None",
        "TensorFlow sequence-classifier dropout left on at inference (training=True from a debugging session)",
        TF,
    ),
    # -- rembert_spec: formats ---------------------------------------------------------------------------------------
    mutation(
        "rembert_spec/formats/safetensors.py",
        "for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):",
        "for name, entry in entries.items():",
        "safetensors layout check walks the header's order: a valid file with its data in another order is refused",
        SPEC,
    ),
    mutation(
        "rembert_spec/formats/safetensors.py",
        "size = math.prod(shape) * np.dtype(dtype).itemsize\n        header[name]",
        "size = math.prod(shape) * 4\n        header[name]",
        "safetensors writer assumes 4-byte elements when it computes data_offsets",
        SPEC,
    ),
    mutation(
        "rembert_spec/formats/hf_h5.py",
        "shape, dtype = tuple(dataset.shape), np.dtype(dataset.dtype)",
        "shape, dtype = tuple(dataset.shape), np.dtype(np.float32)",
        "tf_model.h5 reader maps every dataset as float32",
        SPEC,
    ),
    mutation(
        "rembert_spec/formats/hf_h5.py",
        'if offset is None or not dataset.size or dataset.dtype.kind not in "fiub":',
        'if not dataset.size or dataset.dtype.kind not in "fiub":',
        "tf_model.h5 reader memory-maps chunked (compressed) datasets as if they were contiguous",
        SPEC,
    ),
    mutation(
        "rembert_spec/formats/torch_bin.py",
        "        for key in referenced:\n"
        '            self._offsets[key] = self._record_offset(members[f"{prefix}data/{key}"])\n',
        '        records = [m for n, m in members.items() if n.startswith(f"{prefix}data/")]\n'
        "        records.sort(key=lambda member: member.header_offset)\n"
        "        for key, member in zip(sorted(referenced, key=int), records):\n"
        "            self._offsets[key] = self._record_offset(member)\n",
        "pytorch_model.bin reader assumes storage records lie in the archive in key order",
        SPEC,
    ),
    mutation(
        "rembert_spec/formats/google_tf.py",
        "    transposed=True,\n    dtypes=(),\n    key=variable_name,",
        "    transposed=False,\n    dtypes=(),\n    key=variable_name,",
        "Google TF checkpoints read as if kernels were stored in PyTorch's layout",
        (*SPEC, "tests/conversion/test_google_checkpoint.py"),
    ),
    # -- rembert_spec: weight spec, checkpoint, inputs ---------------------------------------------------------------
    mutation(
        "rembert_spec/weights.py",
        'tf_transpose=kind == "dense_weight",',
        'tf_transpose=kind == "dense_weight" and shape[0] != shape[1],',
        "weight spec marks only non-square Dense kernels as transposed in TensorFlow",
        SPEC,
    ),
    mutation(
        "rembert_spec/weights.py",
        'if checkpoint.shape(checkpoint.known["classifier.weight"])[0] == 1 and config.num_labels != 1:',
        'if checkpoint.shape(checkpoint.known["classifier.weight"])[0] == 1:',
        "a one-label (regression) sequence classifier detected as a multiple-choice head",
        (*SPEC, "tests/conversion/test_cli.py", "tests/conversion/test_writers.py"),
    ),
    mutation(
        "rembert_spec/checkpoint.py",
        "return array.T if transposed else array",
        "return array.T if array.shape != (entry.tf_shape if tf_layout else entry.shape) else array",
        "reader transposes by shape: square kernels of TF files come back in TF's layout",
        SPEC,
    ),
    mutation(
        "rembert_spec/tensor_reader.py",
        "            if got < read.nbytes:  # the file ended early",
        "            if got < 0:  # the file ended early",
        "a tensor read ahead from a file cut after it was opened is handed out part-filled",
        ("tests/spec/test_read_ahead.py",),
    ),
    mutation(
        "rembert_spec/tensor_reader.py",
        "                        self._stopping = True  # the caller meets the error when it takes that tensor",
        "                        pass",
        "reading ahead goes on after an error",
        ("tests/spec/test_read_ahead.py",),
    ),
    mutation(
        "rembert_spec/import_gc.py",
        "        gc.freeze()\n",
        "        pass\n",
        "import_gc pauses the collector but freezes nothing",
        ("tests/spec/test_import_gc.py",),
    ),
    mutation(
        "rembert_spec/checkpoint.py",
        "prefix + name if name in backbone else name for name in checkpoint.names() if name not in wanted",
        "name for name in checkpoint.names() if name not in wanted",
        "unused backbone weights reported without the loading model's `rembert.` prefix",
        ("tests/pt/test_modeling.py", "tests/tf/test_modeling.py", "tests/equivalence"),
    ),
    mutation(
        "rembert_spec/inputs.py",
        "    if low < 0 or high >= limit:\n",
        "    if low < 0 or high > limit:\n",
        "an id equal to vocab_size (one past the table) accepted",
        ("tests/equivalence/test_errors.py", "tests/pt/test_modeling.py"),
    ),
    mutation(
        "rembert_spec/inputs.py",
        "    if past_length + length > config.max_position_embeddings:\n",
        "    if length > config.max_position_embeddings:\n",
        "sequence-length check forgets the cached positions of a decoder",
        ("tests/equivalence/test_cache_length.py", "tests/equivalence/test_errors.py"),
    ),
    # -- both modeling files -----------------------------------------------------------------------------------------
    mutation(
        MODELING_PT,
        "return self.LayerNorm(self.dropout(projected) + residual)",
        "return self.LayerNorm(F.dropout(projected, self.dropout.p) + residual)",
        "feed-forward output dropout through F.dropout without training=: on in eval mode too",
        PT,
    ),
    mutation(
        MODELING_PT,
        "            if not reads_host(computed) or not bool(computed.all()):\n",
        "            if not reads_host(computed) or bool(computed.all()):\n",
        "padding is skipped only in batches that have none (inverted test)",
        PT,
    ),
    mutation(
        MODELING_PT,
        "    if shift:\n        labels = labels[:, 1:]\n",
        "    if shift:\n        labels = labels[:, :-1]\n",
        "causal-LM labels shifted the wrong way: position t scored against label t",
        PT,
    ),
    mutation(
        MODELING_TF,
        '"gelu": lambda x: tf.nn.gelu(x, approximate=False),',
        '"gelu": lambda x: tf.nn.gelu(x, approximate=True),',
        '"gelu" silently mapped to the tanh approximation (gelu_new) in TensorFlow',
        TF_ORACLE,
    ),
    mutation(
        "rembert_tf/layers.py",
        "        if training and self.rate > 0:\n",
        "        if training is not None and self.rate > 0:\n",
        "TensorFlow dropout on whenever `training` is given, training=False included",
        TF,
    ),
    mutation(
        "rembert_tf/keras_model.py",
        "return {output: labels[name] for name, output in zip(names, PREDICTIONS[self.head], strict=True)}",
        "return {output: labels[name] for name, output in zip(names, PREDICTIONS[self.head][::-1], strict=True)}",
        "Keras: QA labels given in the dict of inputs scored against the other output (start against end_logits)",
        (
            "tests/tf/test_keras_label_routing.py",
            "tests/tf/test_keras_workflows.py::test_own_loss_with_metrics_per_output",
        ),
    ),
    # -- tokenizers --------------------------------------------------------------------------------------------------
    mutation(
        "rembert_tokenize/_batch.py",
        "    step = np.maximum(keep - stride, 1)\n    sliding",
        "    step = np.maximum(keep - stride + 1, 1)\n    sliding",
        "overflow windows counted as if they overlapped by stride - 1 tokens",
        TOKENIZE,
    ),
    mutation(
        "rembert_tokenize/_batch.py",
        "long_keep = np.where(halve, budget // 2 + budget % 2, long_keep)",
        "long_keep = np.where(halve, budget // 2, long_keep)",
        "longest_first truncation of a pair loses the odd token of the budget",
        TOKENIZE,
    ),
    mutation(
        "rembert_tokenize/_base.py",
        "return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)",
        "return first if token_ids_1 is None else first + [1] * len(token_ids_1) + [0]",
        "token type of the final [SEP] of a pair is 0",
        TOKENIZE,
    ),
    mutation(
        "rembert_tokenize/_pipeline.py",
        'normalizers.Replace(Regex(" {2,}"), " "),',
        'normalizers.Replace(Regex(" {3,}"), " "),',
        "normalizer no longer collapses a run of two spaces",
        TOKENIZE,
    ),
    mutation(
        "rembert_tokenize/_pipeline.py",
        'first = tokens[0].replace(SPIECE_UNDERLINE, "")',
        'first = tokens[0].replace(SPIECE_UNDERLINE, " ")',
        "decoding keeps the space of the first token's word marker",
        TOKENIZE,
    ),
    # -- the converter -----------------------------------------------------------------------------------------------
    mutation(
        "conversion/staging.py",
        "        if match and not _alive(int(match.group(2))):\n",
        "        if match:\n",
        "a conversion removes the staging directories of other conversions still running",
        CONVERSION,
    ),
    mutation(
        "conversion/plan.py",
        "    return {entry.name for entry in weight_spec(config, head, add_pooling_layer=False) if entry.in_backbone}",
        "    return {entry.name for entry in weight_spec(config, head)}",
        "--head asks for every head weight in the source instead of initialising the missing ones at load",
        CONVERSION,
    ),
    # -- rembert_spec: generation, from_pretrained (shared by both frameworks) ----------------------------------------
    mutation(
        "rembert_spec/generation.py",
        "return np.maximum(np.cumsum(real_tokens != 0, axis=-1) - 1, 0)",
        "return np.maximum(np.cumsum(np.ones_like(real_tokens), axis=-1) - 1, 0)",
        "positions of a left-padded prompt count its padding: a padded row does not continue as it would alone",
        GENERATION,
    ),
    mutation(
        "rembert_spec/generation.py",
        "return bool(self.eos_token_ids) and step < self.min_new_tokens",
        "return bool(self.eos_token_ids) and step + 1 < self.min_new_tokens",
        "min_new_tokens off by one: the end-of-sequence id allowed one step early",
        GENERATION,
    ),
    mutation(
        "rembert_spec/generation.py",
        "            tokens = np.where(unfinished, tokens, settings.pad_token_id)\n",
        "            pass\n",
        "a row that produced end-of-sequence keeps generating instead of getting pad_token_id",
        GENERATION,
    ),
    mutation(
        "rembert_spec/generation.py",
        "hypothesis = best_totals / ((length + 1 - prompt_length) ** penalty)",
        "hypothesis = best_totals / ((length + 1) ** penalty)",
        "beam search's length penalty counts the prompt's tokens too",
        GENERATION,
    ),
    mutation(
        "rembert_spec/pretrained.py",
        'return ("safetensors",) if use_safetensors else tuple(name for name in order if name != "safetensors")',
        'return ("safetensors",) if use_safetensors else order',
        "use_safetensors=False still reads model.safetensors first",
        (EDGES, "tests/pt/test_hf_compat.py"),
    ),
    mutation(
        "rembert_spec/pretrained.py",
        "                return np.dtype(checkpoint.dtype(entry))\n",
        "                return np.dtype(np.float32)\n",
        'dtype="auto" loads a float16 checkpoint as float32',
        ("tests/pt/test_hf_compat.py",),
    ),
    mutation(
        "rembert_spec/pretrained.py",
        "fresh = set(report.missing_keys) | {key for key, _, _ in report.mismatched_keys}",
        "fresh = set(report.missing_keys)",
        "with ignore_mismatched_sizes=True the mis-shaped weights are left uninitialised",
        (EDGES, "tests/pt/test_modeling.py"),
    ),
    mutation(
        MODELING_PT,
        "        counted = torch.cat([counted[:, 1:], torch.zeros_like(counted[:, :1])], dim=1)\n",
        "        pass\n",
        "a causal LM computes the padding at its labels' positions, not at the shifted positions it reads",
        ("tests/pt/test_hf_compat.py", "tests/pt/test_trainer.py"),
    ),
    # -- rembert_tasks: the pipelines' neutral logic -----------------------------------------------------------------
    mutation(
        "rembert_tasks/question_answering.py",
        "scores = np.tril(np.triu(scores), max_answer_len - 1)",
        "scores = np.tril(np.triu(scores), max_answer_len)",
        "QA answers one token longer than max_answer_len",
        TASKS,
    ),
    mutation(
        "rembert_tasks/question_answering.py",
        "null_score = min(null_score, window_null)",
        "null_score = max(null_score, window_null)",
        "the null answer takes the best window's score instead of the lowest",
        TASKS,
    ),
    mutation(
        "rembert_tasks/batching.py",
        "kept[index] = keep(features[index], outputs, row)",
        "kept[start + row] = keep(features[index], outputs, row)",
        "length-sorted batches handed back in length order, not input order",
        TASKS,
    ),
    mutation(
        "rembert_tasks/token_classification.py",
        'if tag != last_tag or position == "B":',
        "if tag != last_tag:",
        "a B- tag no longer starts a new entity",
        TASKS,
    ),
    mutation(
        "rembert_tasks/metrics.py",
        "common = sum((Counter(predicted) & Counter(true)).values())",
        "common = len(set(predicted) & set(true))",
        "SQuAD F1 counts a repeated token once",
        ("tests/tasks/test_squad_f1.py", "tests/tasks/test_postprocessing.py"),
    ),
    # -- hub ids and TensorFlow call forms -----------------------------------------------------------------------
    mutation(
        "rembert_spec/hub.py",
        "                revision=options.revision,\n",
        "                revision=None,\n",
        "from_pretrained(repo_id, revision=...) loads the default branch instead",
        ("tests/spec/test_hub.py",),
    ),
    mutation(
        "rembert_spec/hub.py",
        "return path / options.subfolder if path.is_dir() and options.subfolder else path",
        "return path",
        "subfolder= ignored for a local directory",
        ("tests/spec/test_hub.py", "tests/pt/test_hf_compat.py"),
    ),
    mutation(
        "rembert_tf/call_inputs.py",
        'return names[1:] if names and names[0] == "self" else names',
        "return names",
        "a list of inputs is matched to call's parameters counting self: every input shifts by one",
        ("tests/tf/test_call_forms.py",),
    ),
    mutation(
        "rembert_tf/call_inputs.py",
        '        "training",\n',
        "",
        "training= in a dict of inputs becomes a tensor instead of a Python flag",
        ("tests/tf/test_call_forms.py", "tests/tf/test_keras_workflows.py"),
    ),
    # -- int8 on CPUs without VNNI -------------------------------------------------------------------------------
    mutation(
        "rembert_pt/quantize.py",
        "WEIGHT_LEVELS = 64",
        "WEIGHT_LEVELS = 127",
        "PyTorch int8 weights use the full 8-bit range: AVX2 kernels saturate",
        ("tests/pt/test_internals.py",),
    ),
    mutation(
        "rembert_spec/onnx_files.py",
        "reduce_range=True,",
        "reduce_range=False,",
        "ONNX int8 weights quantized to the full 8-bit range: ONNX Runtime's AVX2 kernel saturates",
        ("tests/deploy/test_onnx_avx2.py",),
    ),
    mutation(
        "benchmarks/onnx_runtime_on_avx2.py",
        'CPUID, UD2 = b"\\x0f\\xa2", b"\\x0f\\x0b"',
        'CPUID = UD2 = b"\\x0f\\xa2"',
        "the benchmarks' AVX2 hold leaves ONNX Runtime's CPUID as it is: the AVX2 rows time this CPU's kernels",
        ("tests/deploy/test_onnx_avx2.py",),
    ),
)


# -- applying ---------------------------------------------------------------------------------------------------


def _count(text: str, snippet: str) -> int:
    return text.count(snippet)


def check(mutations: tuple[Mutation, ...], root: Path) -> list[str]:
    """Problems with `mutations` against the tree at `root`: each snippet must occur exactly once, and the mutated
    file must still compile (a syntax error would be 'killed' by every test and prove nothing)."""
    problems = []
    for m in mutations:
        texts: dict[str, str] = {}
        for edit in m.edits:
            path = root / edit.file
            if edit.file not in texts:
                if not path.is_file():
                    problems.append(f"stale mutation ({m.description}): {edit.file} does not exist")
                    continue
                texts[edit.file] = path.read_text(encoding="utf-8")
            found = _count(texts[edit.file], edit.snippet)
            if found != 1:
                where = "not found" if found == 0 else f"found {found} times"
                problems.append(f"stale mutation ({m.description}): snippet {edit.snippet!r} {where} in {edit.file}")
                continue
            texts[edit.file] = texts[edit.file].replace(edit.snippet, edit.replacement)
        for file, text in texts.items():
            try:
                compile(text, file, "exec")
            except SyntaxError as e:
                problems.append(f"broken mutation ({m.description}): {file} does not compile: {e.msg}")
        for test in m.tests:
            if not (root / test.split("::")[0]).exists():
                problems.append(f"stale mutation ({m.description}): test path {test} does not exist")
    return problems


def apply(m: Mutation, root: Path) -> dict[Path, str]:
    """Apply `m` to the tree at `root`; returns the original text of each file it changed. Raises StaleMutation."""
    originals: dict[Path, str] = {}
    for edit in m.edits:
        path = root / edit.file
        text = path.read_text(encoding="utf-8")
        originals.setdefault(path, text)
        if _count(text, edit.snippet) != 1:
            restore(originals)
            raise StaleMutation(f"stale mutation ({m.description}): snippet {edit.snippet!r} not once in {edit.file}")
        path.write_text(text.replace(edit.snippet, edit.replacement), encoding="utf-8")
    return originals


def restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text, encoding="utf-8")


def copy_repository(destination: Path) -> Path:
    """The working tree (no .git, no virtualenv, no caches) copied to `destination`."""
    shutil.copytree(ROOT, destination, ignore=_NOT_COPIED, symlinks=True)
    return destination


# -- running ----------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    mutation: Mutation
    verdict: str  # "killed", "survived", "timeout" (counted as killed), "error"
    seconds: float
    detail: str = ""

    @property
    def killed(self) -> bool:
        return self.verdict in ("killed", "timeout")


def run_tests(root: Path, tests: tuple[str, ...], timeout: float, exitfirst: bool = True) -> tuple[int | None, str]:
    """(pytest's exit status or None on timeout, its output) for `tests` in the tree at `root`."""
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(["-x"] if exitfirst else []), *tests]
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:  # its output is bytes even with text=True
        output = e.stdout or b""
        return None, output.decode(errors="replace") if isinstance(output, bytes) else output
    return done.returncode, done.stdout + done.stderr


def _first_failure(output: str) -> str:
    match = re.search(r"^(FAILED|ERROR) (\S+)", output, re.M)
    return match.group(2) if match else ""


def run_mutation(m: Mutation, root: Path, timeout: float) -> Outcome:
    started = time.monotonic()
    originals = apply(m, root)
    try:
        status, output = run_tests(root, m.tests, timeout)
    finally:
        restore(originals)
    seconds = time.monotonic() - started
    if status is None:
        return Outcome(m, "timeout", seconds, f"no result within {timeout:.0f} s")
    if status == 0:
        return Outcome(m, "survived", seconds)
    if status in (1, 2):  # tests failed, or collection failed because of the mutation
        return Outcome(m, "killed", seconds, _first_failure(output))
    return Outcome(m, "error", seconds, f"pytest exit status {status}: {output.strip().splitlines()[-1:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="tools/mutate.py")
    parser.add_argument("--list", action="store_true", help="print the curated mutations and exit")
    parser.add_argument("--check", action="store_true", help="only check that every snippet is found, once")
    parser.add_argument("-k", dest="select", help="only mutations whose description or file contains this text")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutation (default 900)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the unmutated tests")
    args = parser.parse_args(argv)

    mutations = tuple(m for m in MUTATIONS if not args.select or args.select in m.description or args.select in m.files)
    if args.list:
        for i, m in enumerate(mutations, 1):
            print(f"{i:3}. {m.files}: {m.description}\n     tests: {' '.join(m.tests)}")
        return 0
    problems = check(mutations, ROOT)
    for problem in problems:
        print(f"mutate: {problem}", file=sys.stderr)
    if problems:
        return 1
    if args.check:
        print(f"mutate: {len(mutations)} mutations, every snippet found once")
        return 0

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rembert-mutate-") as tmp:
        root = copy_repository(Path(tmp) / "repo")
        if not args.no_baseline:
            tests = tuple(dict.fromkeys(test for m in mutations for test in m.tests))
            print(f"baseline: {len(tests)} test paths, unmutated ...", flush=True)
            status, output = run_tests(root, tests, args.timeout * 3, exitfirst=False)
            if status != 0:
                print(output[-3000:], file=sys.stderr)
                print("mutate: the unmutated tests do not pass; fix them first", file=sys.stderr)
                return 2
            print(f"baseline: green ({time.monotonic() - started:.0f} s)", flush=True)
        outcomes = []
        for i, m in enumerate(mutations, 1):
            outcome = run_mutation(m, root, args.timeout)
            outcomes.append(outcome)
            detail = f"  [{outcome.detail}]" if outcome.detail else ""
            line = f"[{i:2}/{len(mutations)}] {outcome.verdict:8} {outcome.seconds:6.1f} s"
            print(f"{line}  {m.files}: {m.description}{detail}")
            sys.stdout.flush()

    killed = sum(o.killed for o in outcomes)
    survived = [o for o in outcomes if o.verdict == "survived"]
    errors = [o for o in outcomes if o.verdict == "error"]
    total = time.monotonic() - started
    print(
        f"\nscore: {killed}/{len(outcomes)} killed ({100 * killed / max(len(outcomes), 1):.0f}%), "
        f"{len(survived)} survived, {len(errors)} errors; {total:.0f} s"
    )
    for o in survived:
        print(f"  SURVIVED: {o.mutation.files}: {o.mutation.description}")
    return 0 if not survived and not errors else 1


if __name__ == "__main__":
    sys.exit(main())

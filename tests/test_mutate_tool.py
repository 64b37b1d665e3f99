"""tools/mutate.py's mechanics (the curated run itself is `make mutate`, not part of the suite): mutations are found
by their snippet, applied to a copy and undone; a snippet not found exactly once is a stale mutation, loudly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutate():
    spec = importlib.util.spec_from_file_location("mutate_tool", ROOT / "tools" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("def f(x):\n    return x + 1\n\n\ndef g(x):\n    return x + 1\n")
    (tmp_path / "tests").mkdir()
    return tmp_path


def test_a_mutation_is_applied_by_snippet_and_undone(mutate, tree):
    m = mutate.mutation("pkg/code.py", "def f(x):\n    return x + 1", "def f(x):\n    return x - 1", "f off by two", ())
    assert mutate.check((m,), tree) == []
    before = (tree / "pkg" / "code.py").read_text()
    originals = mutate.apply(m, tree)
    assert (tree / "pkg" / "code.py").read_text() == before.replace("return x + 1", "return x - 1", 1)
    mutate.restore(originals)
    assert (tree / "pkg" / "code.py").read_text() == before


@pytest.mark.parametrize(
    "snippet, problem",
    [("return x * 2", "not found in pkg/code.py"), ("return x + 1", "found 2 times in pkg/code.py")],
)
def test_a_snippet_not_found_exactly_once_is_a_stale_mutation(mutate, tree, snippet, problem):
    m = mutate.mutation("pkg/code.py", snippet, "return 0", "a refactored line", ())
    (found,) = mutate.check((m,), tree)
    assert found.startswith("stale mutation (a refactored line): snippet") and found.endswith(problem)
    with pytest.raises(mutate.StaleMutation, match="a refactored line"):
        mutate.apply(m, tree)
    assert "return x + 1" in (tree / "pkg" / "code.py").read_text()  # nothing was changed


def test_a_mutation_that_does_not_compile_or_names_missing_tests_is_refused(mutate, tree):
    broken = mutate.mutation("pkg/code.py", "def f(x):", "def f(x:", "a typo", ())
    (problem,) = mutate.check((broken,), tree)
    assert problem == "broken mutation (a typo): pkg/code.py does not compile: '(' was never closed"
    lost = mutate.mutation("pkg/code.py", "def f(x):", "def f(y):", "renamed", ("tests/test_gone.py",))
    assert mutate.check((lost,), tree) == ["stale mutation (renamed): test path tests/test_gone.py does not exist"]


def test_killed_and_survived_are_told_apart(mutate, tree):
    (tree / "tests" / "test_code.py").write_text("from pkg.code import f\n\n\ndef test_f():\n    assert f(1) == 2\n")
    caught = mutate.mutation("pkg/code.py", "def f(x):\n    return x + 1", "def f(x):\n    return 0", "f", ("tests",))
    missed = mutate.mutation("pkg/code.py", "def g(x):\n    return x + 1", "def g(x):\n    return 0", "g", ("tests",))
    killed, survived = (mutate.run_mutation(m, tree, timeout=120) for m in (caught, missed))
    assert (killed.verdict, killed.detail) == ("killed", "tests/test_code.py::test_f")
    assert survived.verdict == "survived"
    assert "return x + 1" in (tree / "pkg" / "code.py").read_text()


def test_the_curated_mutations_still_find_their_code(mutate):
    """A change that rewrites a mutated line says so here, in the suite, rather than at the next `make mutate`:
    update the mutation's snippet with the code (and keep its test)."""
    assert mutate.check(mutate.MUTATIONS, ROOT) == []

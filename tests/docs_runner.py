"""Runs the ```python blocks of a docs/*.md page in order, in one namespace, inside a temporary directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: str) -> list[str]:
    return _BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))


def run_page(page: str, workdir: Path, env: dict[str, str]) -> dict:
    blocks = python_blocks(page)
    assert blocks, f"docs/{page} has no python examples"
    namespace: dict = {"__name__": f"docs_{Path(page).stem}"}
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    os.chdir(workdir)
    os.environ.update(env)
    try:
        for i, block in enumerate(blocks):
            exec(compile(block, f"docs/{page} [python block {i + 1}]", "exec"), namespace)
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
    return namespace

"""rembert_spec.import_gc, the backends' `import_gc` hook: importing rembert_pt or rembert_tf freezes the objects
the framework's import created out of the cyclic collector's sweeps, and leaves the collector as it was. Each
case is a fresh process, as the hook acts at import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rembert_spec import switches

ROOT = Path(__file__).resolve().parents[2]

_STATE = """
import gc, json, sys
package, probe, mode = sys.argv[1:]
if mode == "user-disabled":
    gc.disable()
__import__(package)
probe = eval(probe)  # a class the framework's import created
tracked = {id(o) for o in gc.get_objects()}  # what the collector sweeps (not the frozen)
print(json.dumps(dict(frozen=gc.get_freeze_count(), enabled=gc.isenabled(), swept=id(probe) in tracked)))
"""

BACKENDS = {
    "rembert_pt": "__import__('torch').nn.Linear",
    "rembert_tf": "__import__('keras').layers.Dense",
}


def _state(package: str, mode: str, switch: str = "") -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), switches.ENVIRONMENT_VARIABLE: switch, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", _STATE, package, BACKENDS[package], mode]
    result = subprocess.run(command, env=env, check=True, cwd=ROOT, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", list(BACKENDS))
def test_import_freezes_what_the_framework_created_and_leaves_the_collector_as_it_was(package):
    on = _state(package, "user-enabled")
    assert on["frozen"] > 50_000 and on["enabled"] and not on["swept"]
    assert _state(package, "user-disabled")["enabled"] is False  # a collector the user turned off stays off
    for switch in ("import_gc", "1"):
        off = _state(package, "user-enabled", switch)
        assert off["frozen"] == 0 and off["enabled"] and off["swept"], switch

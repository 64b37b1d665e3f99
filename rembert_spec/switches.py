"""The off switch of the backends' private framework hooks and low-level speed code, read once for both.

`rembert_pt.internals` and `rembert_tf.internals` hold every such hook, each under a name listed here.
`REMBERT_DISABLE_INTERNALS` switches them off: `1` (or `all`) every one, or a comma-separated list of names some
of them (`REMBERT_DISABLE_INTERNALS=dlpack,xla_context`). Every hook is a speed-up or a convenience: the model
computes the same numbers without it (docs/performance.md says what each one buys).

>>> sorted(disabled_hooks("torch", "adopt_pages, dlpack"))
['adopt_pages']
>>> disabled_hooks("tf", "1") == set(HOOKS["tf"])
True
"""

from __future__ import annotations

import os

ENVIRONMENT_VARIABLE = "REMBERT_DISABLE_INTERNALS"

HOOKS = {
    "torch": ("malloc", "adopt_pages", "tensor_version", "assert_async", "pytree", "int_mm", "import_gc"),
    "tf": (
        "input_conversion",
        "deferred_variables",
        "dlpack",
        "xla_context",
        "save_signature",
        "error_context",
        "keras_tree",
        "import_gc",
    ),
}
PACKAGES = {"torch": "rembert_pt", "tf": "rembert_tf"}
_ALL = ("1", "all", "true", "yes")
_NONE = ("", "0", "none", "false", "no")


def disabled_hooks(framework: str, value: str | None = None) -> set[str]:
    """The hooks of `framework` ("torch" or "tf") that `value` (default: the environment variable) switches off.
    A name no backend has is an error, so that a misspelt switch does not silently leave a hook on."""
    value = (os.environ.get(ENVIRONMENT_VARIABLE, "") if value is None else value).strip().lower()
    if value in _NONE:
        return set()
    if value in _ALL:
        return set(HOOKS[framework])
    names = {name.strip() for name in value.split(",") if name.strip()}
    unknown = sorted(names.difference(*HOOKS.values()))
    if unknown:
        known = ", ".join(name for hooks in HOOKS.values() for name in hooks)
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={value!r}: no hook is named {', '.join(unknown)}; use 1 or {known}")
    return names & set(HOOKS[framework])


class Switchboard:
    """One backend's hooks and which of them are off (`disabled`, a set the caller may change at run time)."""

    def __init__(self, framework: str):
        self.framework = framework
        self.hooks = HOOKS[framework]
        self.disabled = disabled_hooks(framework)

    def active(self, hook: str) -> bool:
        """Whether `hook` is switched on."""
        if hook not in self.hooks:
            raise ValueError(f"{PACKAGES[self.framework]} has no hook {hook!r}; its hooks: {', '.join(self.hooks)}")
        return hook not in self.disabled

"""Where a `from_pretrained` argument points: a local directory or file, or a repository of the Hugging Face Hub.

Models, configs and both tokenizers resolve their argument here, once: an existing path is used as it is; a
string shaped like a repo id (`google/rembert`) is fetched through `huggingface_hub` (its cache, `revision=`,
`cache_dir=`, `local_files_only=`, `token=`, `subfolder=`; offline with `HF_HUB_OFFLINE=1`); anything else is
a path that does not exist, and the error names it. `huggingface_hub` is imported only when a repo id is met,
so that `rembert_spec` imports without it.

>>> options, rest = pop_hub_options({"revision": "v1", "num_labels": 3})
>>> options.revision, rest
('v1', {'num_labels': 3})
>>> looks_like_repo_id("google/rembert"), looks_like_repo_id("/models/rembert"), looks_like_repo_id("a/b/c")
(True, False, False)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install huggingface_hub (or rembert[hub])"

# Hub repo ids: a name or owner/name of letters, digits, '-', '_' and '.', at most 96 characters.
_REPO_ID = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")


@dataclass(frozen=True)
class HubOptions:
    """The loading arguments `from_pretrained` shares with Hugging Face's, passed on to `huggingface_hub`.
    `subfolder` applies to local directories too."""

    revision: str | None = None
    cache_dir: str | os.PathLike | None = None
    local_files_only: bool = False
    token: str | bool | None = None
    subfolder: str = ""
    force_download: bool = False
    proxies: dict[str, str] | None = None


HUB_OPTION_NAMES = frozenset(f.name for f in fields(HubOptions))
# Older Hugging Face spellings, still accepted by transformers 4.x: `use_auth_token` is `token`; downloads always
# resume now, so `resume_download` changes nothing.
_ALIASES = {"use_auth_token": "token", "resume_download": None}


def pop_hub_options(kwargs: Mapping[str, Any]) -> tuple[HubOptions, dict[str, Any]]:
    """Split keyword arguments into the hub's options and the rest."""
    rest = dict(kwargs)
    options: dict[str, Any] = {}
    for old, new in _ALIASES.items():
        if old in rest:
            value = rest.pop(old)
            if new is not None and value is not None:
                options[new] = value
    for name in HUB_OPTION_NAMES:
        if name in rest:
            options[name] = rest.pop(name)
    if options.get("subfolder") is None:
        options["subfolder"] = ""
    return HubOptions(**options), rest


def looks_like_repo_id(name: str) -> bool:
    """A string that may name a Hub repository (`name` or `owner/name`), not a filesystem path."""
    return (
        isinstance(name, str)
        and len(name) <= 96
        and _REPO_ID.match(name) is not None
        and not name.startswith((".", "-"))
        and ".." not in name
        and "--" not in name
    )


def local_path(name_or_path: str | os.PathLike, options: HubOptions = HubOptions()) -> Path | None:
    """The local directory or file `name_or_path` names (with `options.subfolder` for a directory), or None for a
    repo id. A path that exists nowhere and cannot be a repo id is a FileNotFoundError naming it."""
    path = Path(name_or_path)
    if path.exists():
        return path / options.subfolder if path.is_dir() and options.subfolder else path
    if path.with_name(f"{path.name}.index").is_file():
        return path  # a TensorFlow checkpoint prefix (Google's `model.ckpt` names `model.ckpt.index` and its data)
    if isinstance(name_or_path, str) and looks_like_repo_id(name_or_path):
        return None
    raise FileNotFoundError(f"{name_or_path}: no such file or directory")


# -- the Hub --------------------------------------------------------------------------------------------


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        return None
    return huggingface_hub


def _where(repo_id: str, options: HubOptions) -> str:
    revision = f" at revision {options.revision!r}" if options.revision else ""
    subfolder = f" in subfolder {options.subfolder!r}" if options.subfolder else ""
    return f"Hugging Face Hub repo {repo_id!r}{revision}{subfolder}"


def _offline(options: HubOptions) -> bool:
    hub = _hub()
    return options.local_files_only or bool(hub is not None and hub.constants.HF_HUB_OFFLINE)


def _cached_repo_folder(repo_id: str, options: HubOptions) -> Path:
    """The repo's folder in the cache, in huggingface_hub's documented layout (`models--owner--name`)."""
    hub = _hub()
    cache = options.cache_dir if options.cache_dir is not None else hub.constants.HF_HUB_CACHE
    separator = hub.constants.REPO_ID_SEPARATOR
    return Path(cache) / f"models{separator}{repo_id.replace('/', separator)}"


def hub_file(repo_id: str, filename: str, options: HubOptions, *, required: bool = True) -> Path | None:
    """`filename` of a Hub repo, from the cache or downloaded into it. Missing: None, or an OSError if required."""
    hub = _hub()
    if hub is None:
        raise OSError(
            f"{repo_id}: not a local directory, and huggingface_hub is not installed to fetch it from the Hugging "
            f"Face Hub ({INSTALL_HINT})"
        )
    from huggingface_hub import errors

    where = _where(repo_id, options)
    # Only what is set, so that a huggingface_hub without an argument (proxies) still serves the rest.
    optional = {"proxies": options.proxies, "force_download": options.force_download or None}
    try:
        return Path(
            hub.hf_hub_download(
                repo_id,
                filename,
                subfolder=options.subfolder or None,
                revision=options.revision,
                cache_dir=options.cache_dir,
                local_files_only=options.local_files_only,
                token=options.token,
                library_name="rembert",
                **{k: v for k, v in optional.items() if v is not None},
            )
        )
    except errors.HFValidationError as e:
        raise OSError(f"{repo_id}: no such local path, and not a valid Hub repo id ({e})") from None
    except errors.GatedRepoError:
        raise OSError(
            f"{where} is gated: accept its conditions on the Hub and pass token= (or log in with `hf auth login`)"
        ) from None
    except errors.RepositoryNotFoundError:
        raise OSError(
            f"{repo_id}: no such local directory, and no {where} (if it is private, pass token= or log in)"
        ) from None
    except errors.RevisionNotFoundError:
        raise OSError(f"{where}: no such revision") from None
    except errors.LocalEntryNotFoundError:
        # Offline (or unreachable): only the cache answers.
        if not _cached_repo_folder(repo_id, options).is_dir():
            mode = "offline mode" if _offline(options) else "the Hub could not be reached"
            raise OSError(
                f"{repo_id}: no such local directory, and nothing for {where} was found in the Hugging Face cache "
                f"({_cached_repo_folder(repo_id, options).parent}; {mode})"
            ) from None
        if required:
            raise OSError(f"{where}: {filename} was not found in the Hugging Face cache (offline mode)") from None
        return None
    except errors.EntryNotFoundError:
        if required:
            raise OSError(f"{where} has no file {filename}") from None
        return None


def hub_weights(repo_id: str, file_names: Sequence[str], options: HubOptions) -> Path:
    """The first of `file_names` the repo has (a shard index comes with every shard it lists)."""
    for name in file_names:
        path = hub_file(repo_id, name, options, required=False)
        if path is None:
            continue
        if name.endswith(".index.json"):
            for shard in sorted(set(_index_shards(path))):
                hub_file(repo_id, shard, options)
        return path
    raise OSError(f"{_where(repo_id, options)}: no weights found (looked for {', '.join(file_names)})")


def _index_shards(index: Path) -> list[str]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [str(shard) for shard in weight_map.values()]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise OSError(f"{index}: not a shard index (a JSON object with a weight_map)") from None


def resolve_directory(
    name_or_path: str | os.PathLike, file_names: Iterable[str], options: HubOptions = HubOptions()
) -> Path:
    """A local directory holding whichever of `file_names` the source has: the directory itself (with its
    subfolder) when local, else the Hub snapshot they were fetched into. Raises when the source has none."""
    path = local_path(name_or_path, options)
    if path is not None:
        if not path.is_dir():
            raise NotADirectoryError(f"{path}: not a directory")
        return path
    file_names = list(file_names)
    found = [hub_file(name_or_path, name, options, required=False) for name in file_names]
    found = [p for p in found if p is not None]
    if not found:
        raise OSError(f"{_where(name_or_path, options)} has none of {', '.join(file_names)}")
    return found[0].parent


# -- upload ---------------------------------------------------------------------------------------------


def push_to_hub(
    directory: Path,
    files: Sequence[Path],
    repo_id: str,
    *,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    create_pr: bool = False,
    revision: str | None = None,
) -> Any:
    """Upload `files` (written in `directory`) to a Hub model repo, creating the repo if needed. Returns
    huggingface_hub's CommitInfo."""
    hub = _hub()
    if hub is None:
        raise OSError(f"push_to_hub needs huggingface_hub ({INSTALL_HINT}); the files are saved in {directory}")
    from huggingface_hub import errors

    if hub.constants.HF_HUB_OFFLINE:
        raise OSError(
            f"push_to_hub: cannot upload to {repo_id!r} in offline mode (HF_HUB_OFFLINE=1); the files are saved in "
            f"{directory}"
        )
    api = hub.HfApi(token=token, library_name="rembert")
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=directory,
            commit_message=commit_message or "Upload RemBERT model",
            allow_patterns=[str(Path(f).relative_to(directory)) for f in files],
            create_pr=create_pr,
            revision=revision,
        )
    except (errors.HfHubHTTPError, errors.OfflineModeIsEnabled, OSError) as e:
        raise OSError(f"push_to_hub: uploading to {repo_id!r} failed ({e}); the files are saved in {directory}") from e

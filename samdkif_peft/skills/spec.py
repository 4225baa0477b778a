"""Where a skill lives: parse a reference (`org/repo[/subfolder][@revision]` or a local directory) and fetch its files.

A skill referenced on the Hub is pinned to the commit it resolved to, so a router keeps meaning the same skills
after their repos move on (X-LoRA stores bare paths and breaks; docs/PEFT_INTERNALS.md §2.5).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from peft.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME

from ..utils import sha256_file


_REPO_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_HUB_REF_RE = re.compile(rf"^(?P<repo>{_REPO_PART}/{_REPO_PART})(?P<sub>(/[^@]+)?)(@(?P<rev>[^@/][^@]*))?$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class SkillReference:
    """A parsed skill reference. Exactly one of `path` (local) and `repo_id` (Hub) is set."""

    name: str
    reference: str
    path: str | None = None
    repo_id: str | None = None
    subfolder: str | None = None
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class ResolvedSkill:
    """A skill fetched to local disk, with the commit it came from and the hash of its weights."""

    spec: SkillReference
    directory: str
    weights_file: str
    revision: str | None
    sha256: str

    @property
    def files(self) -> list[str]:
        return [CONFIG_NAME, os.path.basename(self.weights_file)]


def parse_skill_reference(name: str, reference: str, base_dir: str | None = None) -> SkillReference:
    """Turn `reference` into a `SkillReference`; relative local paths are tried against `base_dir` first."""
    ref = os.fspath(reference).strip()
    candidates = [ref] if os.path.isabs(ref) else ([os.path.join(base_dir, ref)] if base_dir else []) + [ref]
    for cand in candidates:
        if os.path.isdir(cand):
            return SkillReference(name=name, reference=ref, path=os.path.abspath(cand))
    match = _HUB_REF_RE.match(ref)
    if match is None or ref.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"Skill {name!r}: {ref!r} is neither an existing directory nor a Hub reference of the form "
            "'org/repo[/subfolder][@revision]'. Check the path, or train the skill first."
        )
    sub = match.group("sub").strip("/") or None
    return SkillReference(
        name=name, reference=ref, repo_id=match.group("repo"), subfolder=sub, revision=match.group("rev")
    )


def fetch_file(
    path_or_repo: str, filename: str, subfolder: str | None = None, revision: str | None = None
) -> str | None:
    """Local path of `filename` from a directory or a Hub repo (downloaded into the HF cache); None if absent."""
    local = os.path.join(path_or_repo, subfolder or "", filename)
    if os.path.isdir(path_or_repo):
        return local if os.path.isfile(local) else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return hf_hub_download(path_or_repo, filename, subfolder=subfolder, revision=revision)
    except EntryNotFoundError:
        return None


def resolve_revision(repo_id: str, revision: str | None) -> str:
    """The commit sha a branch/tag/sha points to now (a full sha is returned as is, so pinned loads work offline)."""
    if revision is not None and _SHA_RE.match(revision):
        return revision
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        return HfApi().model_info(repo_id, revision=revision).sha
    except RepositoryNotFoundError as err:
        raise FileNotFoundError(
            f"Skill repo {repo_id!r} was not found on the Hub ({_endpoint()}): check the repo id, your token, "
            "or HF_ENDPOINT"
        ) from err
    except RevisionNotFoundError as err:
        raise FileNotFoundError(f"Skill repo {repo_id!r} has no revision {revision!r}") from err


def resolve_skill(spec: SkillReference, allow_pickle: bool = False) -> ResolvedSkill:
    """Fetch a skill's `adapter_config.json` and weights; safetensors only unless `allow_pickle`."""
    try:
        return _resolve_skill(spec, allow_pickle)
    except Exception as err:  # noqa: BLE001 - the transport raises its own types; only Hub failures are rewritten
        if spec.is_local or isinstance(err, FileNotFoundError):  # our own messages already say what is missing
            raise
        from ..tuner.registration import explain_hub_failure

        reason = explain_hub_failure(err, f"Skill {spec.name!r} ({spec.reference})")
        if reason is None:
            raise
        raise ConnectionError(reason) from err


def _resolve_skill(spec: SkillReference, allow_pickle: bool) -> ResolvedSkill:
    if spec.is_local:
        directory, revision = spec.path, None
        config_path = os.path.join(directory, CONFIG_NAME)
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"Skill {spec.name!r}: no {CONFIG_NAME} in {directory!r}; is it a peft adapter?")
        weights = _pick_weights(spec, directory, allow_pickle)
    else:
        revision = resolve_revision(spec.repo_id, spec.revision)
        config_path = fetch_file(spec.repo_id, CONFIG_NAME, spec.subfolder, revision)
        if config_path is None:
            where = f"{spec.repo_id}/{spec.subfolder}" if spec.subfolder else spec.repo_id
            raise FileNotFoundError(f"Skill {spec.name!r}: no {CONFIG_NAME} in Hub repo {where!r}@{revision[:12]}")
        directory = os.path.dirname(config_path)
        for fname in (SAFETENSORS_WEIGHTS_NAME,) + ((WEIGHTS_NAME,) if allow_pickle else ()):
            if fetch_file(spec.repo_id, fname, spec.subfolder, revision) is not None:
                break
        weights = _pick_weights(spec, directory, allow_pickle)
    return ResolvedSkill(
        spec=spec, directory=directory, weights_file=weights, revision=revision, sha256=sha256_file(weights)
    )


def _pick_weights(spec: SkillReference, directory: str, allow_pickle: bool) -> str:
    safe = os.path.join(directory, SAFETENSORS_WEIGHTS_NAME)
    if os.path.isfile(safe):
        return safe
    pickled = os.path.join(directory, WEIGHTS_NAME)
    if os.path.isfile(pickled) and allow_pickle:
        return pickled
    if os.path.isfile(pickled) or (not spec.is_local and not allow_pickle):
        raise ValueError(
            f"Skill {spec.name!r} ({spec.reference}) has no {SAFETENSORS_WEIGHTS_NAME}. Pickled weights can run "
            f"code when loaded, so they are refused; re-save the skill with safetensors, or pass allow_pickle=True "
            "if you trust it."
        )
    raise FileNotFoundError(f"Skill {spec.name!r}: no adapter weights ({SAFETENSORS_WEIGHTS_NAME}) in {directory!r}")


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT

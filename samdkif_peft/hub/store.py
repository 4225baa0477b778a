"""The offline Hub's storage: content-addressed blobs plus JSON commit records, no git (choice for issue 3).

Under `root`:
- `blobs/<sha256[:2]>/<sha256>`: file contents, shared by all repos, written to `tmp/` then `os.replace`d in.
- `repos/<type>/<namespace>--<name>/`: `repo.json` (metadata), `refs.json` (`{"branches": {}, "tags": {}}`) and
  `commits/<sha>.json`, one immutable record per commit: parents and the full file table (`path -> sha256, size,
  git oid, lfs flag`). The sha is the sha1 of the record, so any old sha stays loadable.
A commit is applied under a per-repo lock: blobs, then the record, then one atomic rewrite of `refs.json`. A request
that fails before that last step leaves no commit (orphan blobs are harmless); commits to different repos never
share a lock. One server process per `root`: locks are in-process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


USER = "user"  # the one account every accepted token maps to (`whoami`, default namespace, commit author)
SHA256_RE = re.compile(r"[0-9a-f]{64}")
LFS_EXTENSIONS = "bin safetensors pt pth ckpt h5 onnx parquet arrow npy npz zip".split()
GITATTRIBUTES = "".join(f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS)


class HubError(Exception):
    """An error the client should see as a Hub error: JSON body plus `X-Error-Code`/`X-Error-Message`.

    The store raises it too (unknown revision, bad commit operation), so the handler passes it on unchanged.
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.body = status, message, code, headers or {}, body


def timestamp() -> str:
    """Now, in the Hub's date format (UTC, whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def git_oid(data: bytes) -> str:
    """Git blob sha1: the Hub's `oid`/ETag of a regular file, and what clients compare to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _check_path(path: Any, folder: bool = False) -> str:
    path = path.rstrip("/") if folder and isinstance(path, str) else path  # clients send folders as `dir/`
    if not isinstance(path, str) or "\\" in path or any(p in ("", ".", "..") for p in path.split("/")):
        raise HubError(400, f"Invalid path in repo: {path!r:.200}")
    return path


def _write(path: Path, data: bytes | dict[str, Any], tmpdir: Path | None = None) -> None:
    """Write atomically (a reader sees the old file or the new one, never half); a dict is written as JSON. A failed
    write (full or read-only disk) leaves no temporary file behind."""
    fd, tmp = tempfile.mkstemp(dir=tmpdir or path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data if isinstance(data, bytes) else json.dumps(data).encode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


class HubStore:
    """Blobs, commit records and refs (layout in the module docstring); callers check that a repo exists."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        for sub in ("blobs", "tmp", "repos"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for stale in (self.root / "tmp").iterdir():  # uploads cut off by a crash: never part of any commit
            stale.unlink(missing_ok=True)
        self._locks: dict[Path, threading.RLock] = {}
        self._locks_guard = threading.Lock()

    # -- blobs
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def add_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not (dest := self.blob_path(sha256)).exists():
            dest.parent.mkdir(exist_ok=True)
            _write(dest, data, self.root / "tmp")  # same content, same name: concurrent writers cannot conflict
        return sha256

    def put_blob(self, chunks: Iterable[bytes], sha256: str, size: int) -> None:
        """Stream an LFS upload in without holding it in memory; `HubError` 400, and nothing stored, unless the
        content matches its pointer (`sha256`, `size`)."""
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    digest.update(chunk)
                    f.write(chunk)
                got = f.tell()
            if (got, digest.hexdigest()) != (size, sha256):
                raise HubError(
                    400,
                    f"Upload does not match its LFS pointer: got sha256 {digest.hexdigest()} and {got} bytes, "
                    f"expected {sha256} and {size} bytes",
                )
            (dest := self.blob_path(sha256)).parent.mkdir(exist_ok=True)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    # -- repos
    def repo_dir(self, rtype: str, repo_id: str) -> Path:
        return self.root / "repos" / rtype / repo_id.replace("/", "--")

    def repo_meta(self, rdir: Path) -> dict[str, Any] | None:
        """The repo's metadata, or None if it does not exist (or is still being created)."""
        return _read(rdir / "repo.json")

    def refs(self, rdir: Path) -> dict[str, dict[str, str]]:
        return _read(rdir / "refs.json")

    def lock(self, rdir: Path) -> threading.RLock:
        """The repo's lock (reentrant: `create` commits while holding it)."""
        with self._locks_guard:
            return self._locks.setdefault(rdir, threading.RLock())

    def record(self, rdir: Path, sha: str) -> dict[str, Any] | None:
        return _read(rdir / "commits" / f"{sha}.json") if re.fullmatch(r"[0-9a-f]{40}", sha) else None

    def resolve(self, rdir: Path, rev: str) -> dict[str, Any]:
        """Branch, tag (maybe as `refs/heads/...`), full or unique short sha -> commit record; 404 otherwise."""
        refs, name = self.refs(rdir), re.sub(r"^refs/(heads|tags)/", "", rev)
        sha = refs["branches"].get(name) or refs["tags"].get(name) or name
        if re.fullmatch(r"[0-9a-f]{7,39}", sha):
            found = list((rdir / "commits").glob(f"{sha}*.json"))
            sha = found[0].stem if len(found) == 1 else sha
        if (record := self.record(rdir, sha)) is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return record

    def create(self, rdir: Path, meta: dict[str, Any]) -> bool:
        """Create the repo with an initial `.gitattributes` commit, as the Hub does; False if it already exists."""
        with self.lock(rdir):
            if (rdir / "repo.json").exists():
                return False
            (rdir / "commits").mkdir(parents=True, exist_ok=True)
            _write(rdir / "refs.json", {"branches": {}, "tags": {}})
            ops = [{"key": "file", "value": {"path": ".gitattributes", "content": GITATTRIBUTES}}]
            self.commit(rdir, "main", {"summary": "initial commit"}, ops, new_branch=True)
            _write(rdir / "repo.json", meta)  # last: the repo exists once complete
        return True

    # -- commits
    def commit(self, rdir: Path, branch: str, header: dict[str, Any], ops: list[Any], new_branch: bool = False) -> str:
        """Apply `ops` on top of `branch` and return the new commit sha; any error leaves the branch untouched."""
        branch = branch.removeprefix("refs/heads/")
        with self.lock(rdir):
            refs = self.refs(rdir)
            if (head := refs["branches"].get(branch)) is None and not new_branch:
                raise HubError(404, f"Invalid rev id: {branch} (commits go to branches)", "RevisionNotFound")
            if (parent := header.get("parentCommit")) is not None and not (
                isinstance(parent, str) and re.fullmatch(r"[0-9a-fA-F]{5,40}", parent)
            ):  # the client's own rule (REGEX_COMMIT_OID); a bare "5" would match most heads by prefix
                raise HubError(400, f"parentCommit must be a commit sha (5 to 40 hex digits), got {parent!r:.50}")
            if parent and head and not head.startswith(parent.lower()):
                raise HubError(412, f"Parent commit {parent} is not the head of {branch} ({head})")
            files: dict[str, dict[str, Any]] = dict(self.record(rdir, head)["files"]) if head else {}
            for op in ops:
                self._apply(files, op)
            record = {
                "parents": [head] if head else [],
                "title": str(header.get("summary") or "Commit"),
                "message": str(header.get("description") or ""),
                "author": USER,
                "date": timestamp(),
                "files": dict(sorted(files.items())),
            }
            sha = hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()
            _write(rdir / "commits" / f"{sha}.json", {**record, "id": sha})
            refs["branches"][branch] = sha
            _write(rdir / "refs.json", refs)  # the commit becomes visible here, atomically
        return sha

    def _apply(self, files: dict[str, dict[str, Any]], op: Any) -> None:
        key, value = (op.get("key"), op.get("value")) if isinstance(op, dict) else (None, None)
        if not isinstance(value, dict):
            raise HubError(400, f"Malformed commit operation: {op!r:.200}")
        path = _check_path(value.get("path"), folder=key == "deletedFolder")
        if key == "file":
            content, b64 = value.get("content"), value.get("encoding") == "base64"
            try:
                data = base64.b64decode(content, validate=True) if b64 else content.encode()
            except (AttributeError, TypeError, ValueError):
                raise HubError(400, f"File {path!r} needs a string 'content' (valid base64 if so encoded)") from None
            files[path] = {"sha256": self.add_blob(data), "size": len(data), "oid": git_oid(data), "lfs": False}
        elif key == "lfsFile":
            oid = value.get("oid")
            ok = isinstance(oid, str) and SHA256_RE.fullmatch(oid) and value.get("algo", "sha256") == "sha256"
            if not ok or not (blob := self.blob_path(oid)).exists():
                raise HubError(400, f"LFS object {oid!r:.80} for {path!r} was never uploaded; upload it first")
            if value.get("size") not in (None, size := blob.stat().st_size):
                raise HubError(400, f"LFS object {oid} has size {size}, not {value.get('size')!r:.50}")
            files[path] = {"sha256": oid, "size": size, "oid": git_oid(_lfs_pointer(oid, size)), "lfs": True}
        elif key in ("deletedFile", "deletedFolder"):
            gone = [p for p in files if (p.startswith(f"{path}/") if key == "deletedFolder" else p == path)]
            if not gone:
                raise HubError(404, f"A {key[7:].lower()} with this name doesn't exist: {path}", "EntryNotFound")
            for p in gone:
                del files[p]
        else:
            raise HubError(400, f"Unknown commit operation key: {key!r:.50}")


def lfs_info(file: dict[str, Any]) -> dict[str, Any] | None:
    """LFS details of a stored file: `oid` is what tree entries carry, `sha256` what model_info siblings carry."""
    sha, size = file["sha256"], file["size"]
    lfs = {"oid": sha, "sha256": sha, "size": size, "pointerSize": len(_lfs_pointer(sha, size))}
    return lfs if file["lfs"] else None


def tree_entries(commit: dict[str, Any], base: str, recursive: bool) -> list[dict[str, Any]]:
    """Tree entries under `base` as `huggingface_hub`'s `RepoFile`/`RepoFolder` parse them (folders are implied)."""
    prefix = f"{base.strip('/')}/" if base.strip("/") else ""
    entries, folders = [], set()
    for path, info in commit["files"].items():
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :].split("/")
        for depth in range(1, len(rest) if recursive else min(len(rest), 2)):
            folders.add(prefix + "/".join(rest[:depth]))
        if recursive or len(rest) == 1:
            lfs = {"lfs": lfs_info(info)} if info["lfs"] else {}
            entries.append({"type": "file", "oid": info["oid"], "size": info["size"], "path": path, **lfs})
    for path in folders:  # no git trees here: an oid that is stable per commit and folder
        oid = hashlib.sha1(f"{commit['id']}:{path}".encode()).hexdigest()
        entries.append({"type": "directory", "oid": oid, "size": 0, "path": path})
    return sorted(entries, key=lambda e: e["path"])

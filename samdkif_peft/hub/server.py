"""A small Hub-compatible HTTP server, so the real `huggingface_hub`, peft and transformers work without internet.

It speaks the part of the Hub API that `huggingface_hub` 2.x uses for `create_repo`, `upload_folder`/`create_commit`
(regular files inline, large or binary files through the basic LFS transfer), `hf_hub_download`,
`snapshot_download`, `model_info`, `list_repo_refs`, `list_repo_tree`, branches and tags. Xet is not served:
clients must set `HF_HUB_DISABLE_XET=1` (read at import). Models, datasets and spaces share one code path.

Storage (choice for issue 3): content-addressed blobs plus JSON commit records, no git. Under `root`:

- `blobs/<sha256[:2]>/<sha256>`: file contents, shared by all repos, written to `tmp/` then `os.replace`d in.
- `repos/<type>/<namespace>--<name>/repo.json`: repo metadata; `refs.json`: `{"branches": {...}, "tags": {...}}`.
- `repos/.../commits/<sha>.json`: one immutable record per commit with its parents and the full file table
  (`path -> sha256, size, git oid, lfs flag`). The sha is the sha1 of the record, so old shas stay loadable.

A commit is applied under a per-repo lock: blobs first, then the record, then one atomic rewrite of `refs.json`.
A request that fails anywhere before that last step leaves no commit (orphan blobs are harmless), and commits to
different repos never share a lock. One server process per `root`: locks are in-process.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


logger = logging.getLogger(__name__)

LFS_THRESHOLD = 10_000_000  # bytes; the Hub refuses regular (inline) files above 10 MB
MAX_JSON_BODY = 1 << 30  # inline commits carry base64 files in memory; refuse anything bigger
USER = "user"  # the one account every accepted token maps to (`whoami`, default namespace)
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NAME = r"[\w.-]{1,96}"
REPO_ID_RE = re.compile(rf"^(?:{_NAME}/)?{_NAME}$")
GITATTRIBUTES = "".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n"
    for ext in ("bin", "safetensors", "pt", "pth", "ckpt", "h5", "onnx", "parquet", "arrow", "npy", "npz", "zip")
)

_T, _R = r"(?P<type>models|datasets|spaces)", r"(?P<repo>(?:[^/]+/)?[^/]+)"
_P = r"(?:(?P<prefix>datasets|spaces)/)?"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), h)
    for m, p, h in [
        ("GET", r"^/api/whoami-v2$", "whoami"),
        ("POST", r"^/api/repos/create$", "create_repo"),
        ("DELETE", r"^/api/repos/delete$", "delete_repo"),
        ("POST", r"^/api/validate-yaml$", "validate_yaml"),
        ("POST", rf"^/api/{_T}/{_R}/preupload/(?P<rev>[^/]+)$", "preupload"),
        ("POST", rf"^/api/{_T}/{_R}/commit/(?P<rev>[^/]+)$", "commit"),
        ("POST", rf"^/api/{_T}/{_R}/paths-info/(?P<rev>[^/]+)$", "paths_info"),
        ("POST", rf"^/api/{_T}/{_R}/branch/(?P<name>[^/]+)$", "create_branch"),
        ("POST", rf"^/api/{_T}/{_R}/tag/(?P<rev>[^/]+)$", "create_tag"),
        ("GET", rf"^/api/{_T}/{_R}/refs$", "refs"),
        ("GET", rf"^/api/{_T}/{_R}/commits/(?P<rev>[^/]+)$", "commits"),
        ("GET", rf"^/api/{_T}/{_R}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$", "tree"),
        ("GET", rf"^/api/{_T}/{_R}/revision/(?P<rev>[^/]+)$", "info"),
        ("GET", rf"^/api/{_T}/{_R}$", "info"),
        ("POST", rf"^/{_P}{_R}\.git/info/lfs/objects/batch$", "lfs_batch"),
        ("PUT", r"^/_lfs/upload/(?P<ticket>[\w-]+)$", "lfs_put"),
        ("GET", rf"^/{_P}{_R}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
    ]
]
WRITES = set("create_repo delete_repo preupload commit create_branch create_tag lfs_batch".split())


class HubError(Exception):
    """An error the client should see as a Hub error: JSON body plus `X-Error-Code`/`X-Error-Message`."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
                 body: dict[str, Any] | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.body = status, message, code, headers or {}, body


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def git_oid(data: bytes) -> str:
    """Git blob sha1: the Hub's `oid`/ETag of a regular file, and what clients compare to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _int(value: str | bytes | int, base: int = 10) -> int:
    try:
        return int(value, base) if isinstance(value, str | bytes) else int(value)
    except ValueError:
        raise HubError(400, f"Malformed length in request: {value!r:.50}") from None


def _check_path(path: Any) -> str:
    if not isinstance(path, str) or "\\" in path or any(p in ("", ".", "..") for p in path.split("/")):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class HubStore:
    """Content-addressed blobs plus per-repo commit records and refs (layout in the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        for sub in ("blobs", "tmp", "repos"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- blobs
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def add_blob_file(self, tmp: Path, sha256: str) -> None:
        dest = self.blob_path(sha256)
        dest.parent.mkdir(exist_ok=True)
        os.replace(tmp, dest)  # same content under the same name, so concurrent writers cannot conflict

    def add_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.blob_path(sha256).exists():
            fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self.add_blob_file(Path(tmp), sha256)
        return sha256

    # -- repos
    def repo_dir(self, rtype: str, repo_id: str) -> Path:
        return self.root / "repos" / rtype / repo_id.replace("/", "--")

    @contextlib.contextmanager
    def lock(self, rtype: str, repo_id: str) -> Iterator[None]:
        key = self.repo_dir(rtype, repo_id)
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def meta(self, rtype: str, repo_id: str) -> dict[str, Any]:
        try:
            return json.loads((self.repo_dir(rtype, repo_id) / "repo.json").read_text())
        except FileNotFoundError:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound") from None

    def refs(self, rtype: str, repo_id: str) -> dict[str, dict[str, str]]:
        self.meta(rtype, repo_id)
        return json.loads((self.repo_dir(rtype, repo_id) / "refs.json").read_text())

    def commit_record(self, rtype: str, repo_id: str, sha: str) -> dict[str, Any] | None:
        path = self.repo_dir(rtype, repo_id) / "commits" / f"{sha}.json"
        return json.loads(path.read_text()) if re.fullmatch(r"[0-9a-f]{40}", sha) and path.exists() else None

    def resolve(self, rtype: str, repo_id: str, rev: str) -> dict[str, Any]:
        """Branch, tag, full sha or unique sha prefix -> commit record; 404 `RevisionNotFound` otherwise."""
        refs = self.refs(rtype, repo_id)
        sha = refs["branches"].get(rev) or refs["tags"].get(rev)
        sha = sha or rev.removeprefix("refs/heads/").removeprefix("refs/tags/")
        record = self.commit_record(rtype, repo_id, sha)
        if record is None and re.fullmatch(r"[0-9a-f]{7,39}", rev):
            found = list((self.repo_dir(rtype, repo_id) / "commits").glob(f"{rev}*.json"))
            record = self.commit_record(rtype, repo_id, found[0].stem) if len(found) == 1 else None
        if record is None and sha != rev:  # `refs/heads/main` style
            return self.resolve(rtype, repo_id, sha)
        if record is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return record

    def create(self, rtype: str, repo_id: str, private: bool) -> bool:
        """Create the repo with an initial `.gitattributes` commit, as the Hub does; False if it already exists."""
        rdir = self.repo_dir(rtype, repo_id)
        with self.lock(rtype, repo_id):
            if (rdir / "repo.json").exists():
                return False
            (rdir / "commits").mkdir(parents=True, exist_ok=True)
            _write_atomic(rdir / "refs.json", json.dumps({"branches": {}, "tags": {}}).encode())
            meta = {"id": repo_id, "type": rtype, "private": private, "createdAt": _now()}
            ops = [{"key": "file", "value": {"path": ".gitattributes", "content": GITATTRIBUTES, "encoding": "utf-8"}}]
            self._commit_locked(rtype, repo_id, "main", {"summary": "initial commit"}, ops, create_branch=True)
            _write_atomic(rdir / "repo.json", json.dumps(meta).encode())  # last: the repo exists once complete
        return True

    def delete(self, rtype: str, repo_id: str) -> None:
        self.meta(rtype, repo_id)
        rdir = self.repo_dir(rtype, repo_id)
        with self.lock(rtype, repo_id):
            trash = self.root / "tmp" / f"deleted-{secrets.token_hex(8)}"
            os.replace(rdir, trash)  # atomic disappearance, then the slow part
            shutil.rmtree(trash, ignore_errors=True)

    def add_ref(self, rtype: str, repo_id: str, kind: str, name: str, sha: str) -> None:
        """Add a branch or tag (`kind` is "branches" or "tags"); 409 if it exists, as on the Hub."""
        with self.lock(rtype, repo_id):
            refs = self.refs(rtype, repo_id)
            if name in refs[kind]:
                raise HubError(409, f"Reference {name!r} already exists in {repo_id}")
            refs[kind][name] = sha
            _write_atomic(self.repo_dir(rtype, repo_id) / "refs.json", json.dumps(refs).encode())

    def commit(self, rtype: str, repo_id: str, branch: str, header: dict[str, Any], ops: list[dict[str, Any]]) -> str:
        self.meta(rtype, repo_id)
        with self.lock(rtype, repo_id):
            return self._commit_locked(rtype, repo_id, branch, header, ops)

    def _commit_locked(
        self,
        rtype: str,
        repo_id: str,
        branch: str,
        header: dict[str, Any],
        ops: list[dict[str, Any]],
        create_branch: bool = False,
    ) -> str:
        branch = branch.removeprefix("refs/heads/")
        rdir = self.repo_dir(rtype, repo_id)
        refs = json.loads((rdir / "refs.json").read_text())
        head = refs["branches"].get(branch)
        if head is None and not create_branch:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to branches)", "RevisionNotFound")
        parent = header.get("parentCommit")
        if parent and head and not head.startswith(parent):
            raise HubError(412, f"Parent commit {parent} is not the head of {branch} ({head})")
        files: dict[str, dict[str, Any]] = dict(self.commit_record(rtype, repo_id, head)["files"]) if head else {}
        for op in ops:
            key, value = op.get("key"), op.get("value")
            if not isinstance(value, dict):
                raise HubError(400, f"Malformed commit operation: {op!r:.200}")
            path = _check_path(value.get("path"))
            if key == "file":
                content = value.get("content")
                if not isinstance(content, str):
                    raise HubError(400, f"File {path!r} has no string 'content'")
                try:
                    data = base64.b64decode(content, validate=True) if value.get("encoding") == "base64" else None
                except ValueError:
                    raise HubError(400, f"File {path!r} is not valid base64") from None
                data = content.encode() if data is None else data
                files[path] = {"sha256": self.add_blob(data), "size": len(data), "oid": git_oid(data), "lfs": False}
            elif key == "lfsFile":
                oid = value.get("oid")
                if (
                    value.get("algo", "sha256") != "sha256"
                    or not isinstance(oid, str)
                    or not re.fullmatch(r"[0-9a-f]{64}", oid)
                ):
                    raise HubError(400, f"LFS file {path!r} needs a sha256 'oid'")
                blob = self.blob_path(oid)
                if not blob.exists():
                    raise HubError(400, f"LFS object {oid} for {path!r} was never uploaded; upload it first")
                size = blob.stat().st_size
                if value.get("size") not in (None, size):
                    raise HubError(400, f"LFS object {oid} has size {size}, not {value.get('size')}")
                files[path] = {"sha256": oid, "size": size, "oid": git_oid(_lfs_pointer(oid, size)), "lfs": True}
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                gone = [p for p in files if p.startswith(path.rstrip("/") + "/")]
                if not gone:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in gone:
                    del files[p]
            else:
                raise HubError(400, f"Unknown commit operation key: {key!r}")
        record = {
            "parents": [head] if head else [],
            "title": str(header.get("summary") or "Commit"),
            "message": str(header.get("description") or ""),
            "author": USER,
            "date": _now(),
            "files": dict(sorted(files.items())),
        }
        sha = hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()
        record["id"] = sha
        _write_atomic(rdir / "commits" / f"{sha}.json", json.dumps(record).encode())
        refs["branches"][branch] = sha
        _write_atomic(rdir / "refs.json", json.dumps(refs).encode())  # the commit becomes visible here, atomically
        logger.info("commit %s on %s %s@%s: %s", sha[:8], rtype, repo_id, branch, record["title"])
        return sha


def _lfs(info: dict[str, Any]) -> dict[str, Any] | None:
    """LFS details of a stored file: `oid` is what tree entries carry, `sha256` what model_info siblings carry."""
    if not info["lfs"]:
        return None
    pointer_size = len(_lfs_pointer(info["sha256"], info["size"]))
    return {"oid": info["sha256"], "sha256": info["sha256"], "size": info["size"], "pointerSize": pointer_size}


def _entry(path: str, info: dict[str, Any]) -> dict[str, Any]:
    """A tree/paths-info file entry as `huggingface_hub.hf_api.RepoFile` parses it."""
    lfs = _lfs(info)
    return {"type": "file", "oid": info["oid"], "size": info["size"], "path": path, **({"lfs": lfs} if lfs else {})}


def _folder(path: str, commit: dict[str, Any]) -> dict[str, Any]:
    oid = hashlib.sha1(f"{commit['id']}:{path}".encode()).hexdigest()  # stable per commit; no git trees here
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


class _Handler(BaseHTTPRequestHandler):
    """Routes requests by `ROUTES`; every failure leaves as a Hub-shaped JSON error."""

    protocol_version = "HTTP/1.1"  # keep-alive: httpx reuses connections
    server: _HTTPServer

    # -- plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        logger.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by `http.server` itself (bad request line, unknown method) in the Hub shape, not HTML."""
        self.close_connection = True
        self._reply(code, {"error": message or HTTPStatus(code).phrase}, error=message or HTTPStatus(code).phrase)

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None, error: str | None = None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        hdrs = {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}
        if error is not None:
            # Header-safe: ASCII, one line (a path from the URL may hold %0A), short.
            hdrs["X-Error-Message"] = " ".join(error.encode("ascii", "replace").decode().split())[:500]
        if not getattr(self, "_body_done", True):
            self.close_connection = True  # unread request body: the connection cannot be reused
            hdrs["Connection"] = "close"
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _iter_body(self) -> Iterator[bytes]:
        self._body_done = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while size := _int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                yield self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return
        remaining = _int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                raise HubError(400, "Request body ended early")
            remaining -= len(chunk)
            yield chunk

    def _body(self) -> bytes:
        chunks, total = [], 0
        for chunk in self._iter_body():
            total += len(chunk)
            if total > MAX_JSON_BODY:
                self._body_done = False  # the rest is unread: close the connection after replying
                raise HubError(413, f"Request body over {MAX_JSON_BODY} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _json(self) -> Any:
        try:
            return json.loads(self._body() or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise HubError(400, f"Body is not valid JSON: {err}") from None

    def _authorized(self) -> bool:
        want = self.server.token
        return want is None or self.headers.get("Authorization", "") == f"Bearer {want}"

    @property
    def _endpoint(self) -> str:
        return f"http://{self.headers.get('Host') or self.server.endpoint.removeprefix('http://')}"

    def _dispatch(self) -> None:
        self._body_done = not (
            self.headers.get("Content-Length") not in (None, "0") or "Transfer-Encoding" in self.headers
        )
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            method = "GET" if self.command == "HEAD" else self.command
            found = ((m, h) for rm, pattern, h in ROUTES if rm == method and (m := pattern.match(url.path)))
            match, handler = next(found, (None, ""))
            if match is None:
                raise HubError(404, f"No route for {self.command} {url.path}")
            args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            if "repo" in args:
                args["rtype"] = REPO_TYPES[args.pop("type", None) or args.pop("prefix", "models")]
                self._check_read(args["rtype"], args["repo"])
            if handler in WRITES and not self._authorized():
                raise HubError(401, "Invalid credentials in Authorization header")
            getattr(self, f"do_{handler}")(**args)
        except HubError as err:
            headers = {**err.headers, **({"X-Error-Code": err.code} if err.code else {})}
            self._reply(err.status, {"error": err.message, **(err.body or {})}, headers, err.message)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # a bug must not leak a stack trace to the client
            logger.exception("Unhandled error for %s %s", self.command, self.path)
            self._reply(500, {"error": "Internal server error"}, error="Internal server error")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def _check_read(self, rtype: str, repo_id: str) -> None:
        """Private repos look missing without the write token, as on the Hub."""
        if not REPO_ID_RE.match(repo_id) or "--" in repo_id or ".." in repo_id:
            raise HubError(400, f"Invalid repo id {repo_id!r}: use 'namespace/name' with letters, digits, '-_.'")
        meta_path = self.server.store.repo_dir(rtype, repo_id) / "repo.json"
        if meta_path.exists() and json.loads(meta_path.read_text()).get("private") and not self._authorized():
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")

    # -- account and repos
    def do_whoami(self) -> None:
        if not self.headers.get("Authorization", "").startswith("Bearer ") or not self._authorized():
            raise HubError(401, "Invalid credentials in Authorization header")
        auth = {"type": "access_token", "accessToken": {"displayName": "offline", "role": "write"}}
        self._reply(200, {"type": "user", "id": USER, "name": USER, "fullname": USER, "orgs": [], "auth": auth})

    def _repo_from_body(self) -> tuple[str, str, dict[str, Any]]:
        body = self._json()
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise HubError(400, "Expected a JSON object with a string 'name'")
        repo_id = f"{body.get('organization') or USER}/{body['name']}"
        rtype = body.get("type") or "model"
        if rtype not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type {rtype!r}; use one of {sorted(URL_PREFIX)}")
        self._check_read(rtype, repo_id)
        return rtype, repo_id, body

    def do_create_repo(self) -> None:
        rtype, repo_id, body = self._repo_from_body()
        url = f"{self._endpoint}/{URL_PREFIX[rtype]}{repo_id}"
        private = bool(body.get("private")) or body.get("visibility") == "private"
        if not self.server.store.create(rtype, repo_id, private):
            raise HubError(409, f"You already created this {rtype} repo: {repo_id}", body={"url": url})  # exist_ok
        self._reply(200, {"url": url, "name": repo_id, "id": repo_id})

    def do_delete_repo(self) -> None:
        rtype, repo_id, _ = self._repo_from_body()
        self.server.store.delete(rtype, repo_id)
        self._reply(200, {})

    def do_validate_yaml(self) -> None:
        import yaml

        body = self._json()
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str):
            raise HubError(400, "Expected a JSON object with a string 'content'")
        errors = []
        if content.startswith("---"):
            try:
                meta = yaml.safe_load(content.split("---", 2)[1]) if content.count("---") >= 2 else None
                if meta is not None and not isinstance(meta, dict):
                    errors.append({"message": "Metadata must be a YAML mapping"})
            except yaml.YAMLError as err:
                errors.append({"message": f"Invalid YAML: {err}"})
        self._reply(
            400 if errors else 200,
            {"errors": errors, "warnings": [], **({"error": errors[0]["message"]} if errors else {})},
            error="Invalid metadata" if errors else None,
        )

    # -- uploads
    def do_preupload(self, rtype: str, repo: str, rev: str) -> None:
        self.server.store.meta(rtype, repo)
        body = self._json()
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str) for f in files
        ):
            raise HubError(400, "Expected {'files': [{'path', 'size', 'sample'}]}")
        try:
            current = self.server.store.resolve(rtype, repo, rev)["files"]
        except HubError:
            current = {}  # a branch the commit may still create is fine at this stage
        out = []
        for f in files:
            try:
                sample = base64.b64decode(f.get("sample") or "")
            except ValueError:
                raise HubError(400, f"File {f['path']!r}: 'sample' is not base64") from None
            lfs = int(f.get("size") or 0) > LFS_THRESHOLD or b"\0" in sample
            known = current.get(f["path"])
            oid = None if known is None or known["lfs"] != lfs else (known["sha256"] if lfs else known["oid"])
            out.append(
                {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self._reply(200, {"files": out, "commitOid": None})

    def do_lfs_batch(self, rtype: str, repo: str) -> None:
        self.server.store.meta(rtype, repo)
        body = self._json()
        body = body if isinstance(body, dict) else {}
        objects = body.get("objects")
        if body.get("operation") != "upload" or not isinstance(objects, list):
            raise HubError(400, "Only LFS 'upload' batches with an 'objects' list are served")
        out = []
        for obj in objects:
            oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
            if not isinstance(oid, str) or not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int):
                raise HubError(400, f"LFS objects need a sha256 'oid' and an int 'size', got {obj!r:.200}")
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            blob = self.server.store.blob_path(oid)
            if not (blob.exists() and blob.stat().st_size == size):
                ticket = secrets.token_urlsafe(24)  # the PUT carries no auth header: the URL is the credential
                self.server.tickets[ticket] = (oid, size)
                item["actions"] = {"upload": {"href": f"{self._endpoint}/_lfs/upload/{ticket}", "expires_in": 86400}}
            out.append(item)
        self._reply(200, {"transfer": "basic", "objects": out, "hash_algo": "sha256"})

    def do_lfs_put(self, ticket: str) -> None:
        expected = self.server.tickets.get(ticket)
        if expected is None:
            raise HubError(403, "Unknown or expired LFS upload URL; ask the batch endpoint again")
        oid, size = expected
        store, digest, got = self.server.store, hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=store.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in self._iter_body():
                    digest.update(chunk)
                    got += len(chunk)
                    f.write(chunk)
            if got != size or digest.hexdigest() != oid:
                raise HubError(
                    400,
                    f"Upload does not match its LFS pointer: got sha256 {digest.hexdigest()} and "
                    f"{got} bytes, expected {oid} and {size} bytes",
                )
            store.add_blob_file(Path(tmp), oid)
        finally:
            Path(tmp).unlink(missing_ok=True)
        self.server.tickets.pop(ticket, None)
        self._reply(200, {}, {"ETag": f'"{oid}"'})

    def do_commit(self, rtype: str, repo: str, rev: str) -> None:
        if self.query.get("create_pr") in ("1", "true", "True"):
            raise HubError(400, "Pull requests are not supported by this offline Hub; commit to a branch")
        lines = [line for line in self._body().splitlines() if line.strip()]
        try:
            items = [json.loads(line) for line in lines]
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise HubError(400, f"Commit body is not NDJSON: {err}") from None
        if not items or not all(isinstance(i, dict) for i in items) or items[0].get("key") != "header":
            raise HubError(400, "Commit body must start with a {'key': 'header', 'value': {...}} line")
        header = items[0].get("value") if isinstance(items[0].get("value"), dict) else {}
        sha = self.server.store.commit(rtype, repo, rev, header, items[1:])
        url = f"{self._endpoint}/{URL_PREFIX[rtype]}{repo}/commit/{sha}"
        self._reply(200, {"success": True, "commitOid": sha, "commitUrl": url, "pullRequestUrl": None})

    def do_create_branch(self, rtype: str, repo: str, name: str) -> None:
        body = self._json() or {}
        start = self.server.store.resolve(rtype, repo, body.get("startingPoint") or "main")["id"]
        self.server.store.add_ref(rtype, repo, "branches", name, start)
        self._reply(200, {})

    def do_create_tag(self, rtype: str, repo: str, rev: str) -> None:
        body = self._json()
        if not isinstance(body, dict) or not isinstance(body.get("tag"), str) or not body["tag"]:
            raise HubError(400, "Expected a JSON object with a string 'tag'")
        sha = self.server.store.resolve(rtype, repo, rev)["id"]
        self.server.store.add_ref(rtype, repo, "tags", body["tag"], sha)
        self._reply(200, {})

    # -- downloads
    def do_info(self, rtype: str, repo: str, rev: str = "main") -> None:
        store = self.server.store
        meta, commit = store.meta(rtype, repo), store.resolve(rtype, repo, rev)
        blobs = self.query.get("blobs") in ("1", "true", "True")
        extra = (lambda i: {"size": i["size"], "blobId": i["oid"], "lfs": _lfs(i)}) if blobs else (lambda i: {})
        siblings = [{"rfilename": p, **extra(i)} for p, i in commit["files"].items()]
        card = self._card_data(commit)
        self._reply(200, {
            "_id": repo, "id": repo, "modelId": repo, "author": repo.split("/")[0], "sha": commit["id"],
            "lastModified": commit["date"], "createdAt": meta["createdAt"], "private": meta["private"],
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": card.get("tags") or [],
            "library_name": card.get("library_name"), "cardData": card or None, "siblings": siblings,
        })  # fmt: skip

    def _card_data(self, commit: dict[str, Any]) -> dict[str, Any]:
        info = commit["files"].get("README.md")
        if info is None:
            return {}
        import yaml

        text = self.server.store.blob_path(info["sha256"]).read_text(errors="replace")
        try:
            meta = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") and text.count("---") >= 2 else {}
        except yaml.YAMLError:
            return {}
        return meta if isinstance(meta, dict) else {}

    def do_refs(self, rtype: str, repo: str) -> None:
        refs = self.server.store.refs(rtype, repo)

        def fmt(kind: str, prefix: str) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": s} for n, s in sorted(refs[kind].items())]

        body = {"branches": fmt("branches", "refs/heads/"), "tags": fmt("tags", "refs/tags/"), "converts": []}
        self._reply(200, {**body, "pullRequests": []})

    def do_commits(self, rtype: str, repo: str, rev: str) -> None:
        commit, out = self.server.store.resolve(rtype, repo, rev), []
        while commit is not None:
            out.append({"id": commit["id"], "title": commit["title"], "message": commit["message"],
                        "authors": [{"user": commit["author"]}], "date": commit["date"]})  # fmt: skip
            parents = commit["parents"]
            commit = self.server.store.commit_record(rtype, repo, parents[0]) if parents else None
        self._reply(200, out)

    def _listing(self, commit: dict[str, Any], base: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{base.strip('/')}/" if base.strip("/") else ""
        files, folders = [], set()
        for path, info in commit["files"].items():
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :].split("/")
            for depth in range(1, len(rest) if recursive else min(len(rest), 2)):
                folders.add(prefix + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                files.append(_entry(path, info))
        return sorted([_folder(p, commit) for p in folders] + files, key=lambda e: e["path"])

    def do_tree(self, rtype: str, repo: str, rev: str, path: str = "") -> None:
        commit = self.server.store.resolve(rtype, repo, rev)
        entries = self._listing(commit, path, self.query.get("recursive") in ("1", "true", "True"))
        if path.strip("/") and not entries:
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        self._reply(200, entries)

    def do_paths_info(self, rtype: str, repo: str, rev: str) -> None:
        commit = self.server.store.resolve(rtype, repo, rev)
        raw = self._body()
        form = json.loads(raw) if raw.startswith(b"{") else parse_qs(raw.decode(errors="replace"))
        paths = form.get("paths") if isinstance(form, dict) else None
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list):
            raise HubError(400, "Expected 'paths' in the form body")
        out = []
        for p in paths:
            p = str(p).strip("/")
            if p in commit["files"]:
                out.append(_entry(p, commit["files"][p]))
            elif any(f.startswith(p + "/") for f in commit["files"]):
                out.append(_folder(p, commit))
        self._reply(200, out)

    def do_resolve(self, rtype: str, repo: str, rev: str, path: str) -> None:
        store = self.server.store
        commit = store.resolve(rtype, repo, rev)
        info = commit["files"].get(path)
        if info is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit["id"]})
        etag = info["sha256"] if info["lfs"] else info["oid"]
        size, start, end = info["size"], 0, info["size"] - 1
        headers = {"X-Repo-Commit": commit["id"], "ETag": f'"{etag}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}  # fmt: skip
        if info["lfs"]:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(size)})
        status, rng = 200, self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m and m[1]:
                start, end = int(m[1]), min(int(m[2]), end) if m[2] else end
            elif m and m[2]:
                start = max(size - int(m[2]), 0)
            if not m or not (m[1] or m[2]) or start > end:
                raise HubError(416, f"Range {rng!r} not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            status, headers["Content-Range"] = 206, f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(store.blob_path(info["sha256"]), "rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0 and (chunk := f.read(min(remaining, 1 << 20))):
                self.wfile.write(chunk)
                remaining -= len(chunk)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never blocks shutdown
    store: HubStore
    token: str | None
    tickets: dict[str, tuple[str, int]]
    endpoint: str
    connections: set[socket.socket]

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop idle keep-alive connections too, or clients' pooled connections keep being served after stop()."""
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class HubServer:
    """The offline Hub, serving `root` on `host:port` (0 = a free port) from a background thread.

    Args:
        root (`str` or `os.PathLike`): storage directory (created if missing; see the module docstring).
        host (`str`, *optional*, defaults to `"127.0.0.1"`): interface to bind; `"0.0.0.0"` for a site server.
        port (`int`, *optional*, defaults to 0): TCP port; 0 picks a free one, read it back from `.endpoint`.
        token (`str`, *optional*): if set, writes (and reads of private repos) need `Authorization: Bearer <token>`,
            otherwise they get 401; reads of public repos stay open. If unset, any token is accepted.
    """

    def __init__(self, root: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.root, self.host, self.port, self.token = Path(root), host, port, token
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The URL to put in `HF_ENDPOINT`, e.g. `http://127.0.0.1:8080` (the real port once started)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def _bind(self) -> _HTTPServer:
        if self._httpd is not None:
            raise RuntimeError(f"HubServer on {self.endpoint} is already started; call stop() first")
        httpd = _HTTPServer((self.host, self.port), _Handler)
        self.port = httpd.server_address[1]
        httpd.store, httpd.token, httpd.tickets, httpd.endpoint = HubStore(self.root), self.token, {}, self.endpoint
        httpd.connections = set()
        self._httpd = httpd
        logger.info("offline Hub serving %s at %s", self.root, self.endpoint)
        return httpd

    def start(self) -> HubServer:
        httpd = self._bind()
        self._thread = threading.Thread(target=httpd.serve_forever, name=f"hub-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self, ready: Callable[[str], object] | None = None) -> None:
        """Serve in the calling thread until `KeyboardInterrupt` (the CLI); `ready(endpoint)` runs once bound."""
        httpd = self._bind()
        if ready is not None:
            ready(self.endpoint)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            logger.info("offline Hub at %s stopped", self.endpoint)
        finally:
            httpd.close_connections()
            httpd.server_close()
            self._httpd = None

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_hub(root: str | os.PathLike[str], port: int = 0, token: str | None = None) -> Iterator[str]:
    """Run a `HubServer` on 127.0.0.1 for the duration of the block and yield its endpoint string."""
    with HubServer(root, port=port, token=token) as server:
        yield server.endpoint

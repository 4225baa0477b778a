"""A small Hub-compatible HTTP server, so the real `huggingface_hub`, peft and transformers work without internet.

It speaks the part of the Hub API that `huggingface_hub` 2.x uses to create repos, commit (small text files inline,
large or binary ones through the basic LFS transfer), download, and read repo info, trees, refs and history; models,
datasets and spaces alike. Xet is not served: clients set `HF_HUB_DISABLE_XET=1`. Left out, as nothing here needs
them: deleting repos, creating branches and tags (all commits go to `main`), pull requests, `paths-info`.

Storage (choice for issue 3): content-addressed blobs plus JSON commit records, no git. Under `root`:
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
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


logger = logging.getLogger(__name__)

LFS_THRESHOLD = 10_000_000  # bytes; the Hub refuses regular (inline) files above 10 MB
MAX_JSON_BODY = 1 << 30  # inline commits carry base64 files in memory; refuse anything bigger
USER = "user"  # the one account every accepted token maps to (`whoami`, default namespace)
UNAUTHORIZED = "Invalid credentials in Authorization header"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
REPO_ID_RE = re.compile(r"^(?:\w[\w.-]{0,95}/)?\w[\w.-]{0,95}$")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
LFS_EXTENSIONS = "bin safetensors pt pth ckpt h5 onnx parquet arrow npy npz zip".split()
GITATTRIBUTES = "".join(f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS)

_T, _R = r"(?P<type>models|datasets|spaces)", r"(?P<repo>(?:[^/]+/)?[^/]+)"
_P = r"(?:(?P<prefix>datasets|spaces)/)?"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), h)
    for m, p, h in [
        ("GET", r"^/api/whoami-v2$", "whoami"),
        ("POST", r"^/api/repos/create$", "create_repo"),
        ("POST", r"^/api/validate-yaml$", "validate_yaml"),
        ("POST", rf"^/api/{_T}/{_R}/preupload/(?P<rev>[^/]+)$", "preupload"),
        ("POST", rf"^/api/{_T}/{_R}/commit/(?P<rev>[^/]+)$", "commit"),
        ("GET", rf"^/api/{_T}/{_R}/refs$", "refs"),
        ("GET", rf"^/api/{_T}/{_R}/commits/(?P<rev>[^/]+)$", "commits"),
        ("GET", rf"^/api/{_T}/{_R}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$", "tree"),
        ("GET", rf"^/api/{_T}/{_R}(?:/revision/(?P<rev>[^/]+))?$", "info"),
        ("POST", rf"^/{_P}{_R}\.git/info/lfs/objects/batch$", "lfs_batch"),
        ("PUT", r"^/_lfs/upload/(?P<ticket>[\w-]+)$", "lfs_put"),  # no auth header: the ticket is the credential
        ("GET", rf"^/{_P}{_R}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
    ]
]
WRITES = {"create_repo", "preupload", "commit", "lfs_batch"}


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


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise HubError(400, f"Malformed length in request: {value!r:.50}") from None


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


def _card_meta(text: str) -> dict[str, Any]:
    """A README's YAML front matter ({} if none); `HubError` 400 if it is not a YAML mapping."""
    import yaml  # only model cards need it

    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") and text.count("---") >= 2 else {}
    except (yaml.YAMLError, RecursionError) as err:  # absurdly deep nesting exhausts PyYAML's recursion
        raise HubError(400, f"Invalid YAML: {err!s:.500}") from None
    if not isinstance(meta, dict | None):
        raise HubError(400, "Metadata must be a YAML mapping")
    return meta or {}


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

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def add_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not (dest := self.blob_path(sha256)).exists():
            dest.parent.mkdir(exist_ok=True)
            _write(dest, data, self.root / "tmp")  # same content, same name: concurrent writers cannot conflict
        return sha256

    def repo_dir(self, rtype: str, repo_id: str) -> Path:
        return self.root / "repos" / rtype / repo_id.replace("/", "--")

    def lock(self, rdir: Path) -> threading.RLock:
        """The repo's lock (reentrant: `create` commits while holding it)."""
        with self._locks_guard:
            return self._locks.setdefault(rdir, threading.RLock())

    def record(self, rdir: Path, sha: str) -> dict[str, Any] | None:
        return _read(rdir / "commits" / f"{sha}.json") if re.fullmatch(r"[0-9a-f]{40}", sha) else None

    def resolve(self, rdir: Path, rev: str) -> dict[str, Any]:
        """Branch, tag (maybe as `refs/heads/...`), full or unique short sha -> commit record; 404 otherwise."""
        refs, name = _read(rdir / "refs.json"), re.sub(r"^refs/(heads|tags)/", "", rev)
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

    def commit(self, rdir: Path, branch: str, header: dict[str, Any], ops: list[Any], new_branch: bool = False) -> str:
        """Apply `ops` on top of `branch` and return the new commit sha; any error leaves the branch untouched."""
        branch = branch.removeprefix("refs/heads/")
        with self.lock(rdir):
            refs = _read(rdir / "refs.json")
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
            record = {"parents": [head] if head else [], "title": str(header.get("summary") or "Commit"),
                      "message": str(header.get("description") or ""), "author": USER, "date": _now(),
                      "files": dict(sorted(files.items()))}  # fmt: skip
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


def _lfs(info: dict[str, Any]) -> dict[str, Any] | None:
    """LFS details of a stored file: `oid` is what tree entries carry, `sha256` what model_info siblings carry."""
    sha, size = info["sha256"], info["size"]
    lfs = {"oid": sha, "sha256": sha, "size": size, "pointerSize": len(_lfs_pointer(sha, size))}
    return lfs if info["lfs"] else None


def _listing(commit: dict[str, Any], base: str, recursive: bool) -> list[dict[str, Any]]:
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
            lfs = {"lfs": _lfs(info)} if info["lfs"] else {}
            entries.append({"type": "file", "oid": info["oid"], "size": info["size"], "path": path, **lfs})
    for path in folders:  # no git trees here: an oid that is stable per commit and folder
        oid = hashlib.sha1(f"{commit['id']}:{path}".encode()).hexdigest()
        entries.append({"type": "directory", "oid": oid, "size": 0, "path": path})
    return sorted(entries, key=lambda e: e["path"])


class _Handler(BaseHTTPRequestHandler):
    """Routes requests by `ROUTES` to `do_<name>`; every failure leaves as a Hub-shaped JSON error. For a route
    naming a repo, `_dispatch` first checks it exists and is readable, and sets `rtype`, `repo`, `rdir`, `meta`."""

    protocol_version = "HTTP/1.1"  # keep-alive: httpx reuses connections
    server: HubServer
    _body_done = True  # False while a request body is unread: then the connection cannot be reused

    # -- plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        logger.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by `http.server` itself (bad request line, unknown method) in the Hub shape, not HTML."""
        self.close_connection = True
        self._fail(HubError(code, message or self.responses.get(code, ("Error",))[0]))

    def _send(self, status: int, headers: dict[str, str], data: bytes = b"") -> None:
        if not self._body_done:
            self.close_connection, headers["Connection"] = True, "close"
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, default=str).encode()  # default: YAML card data may hold dates
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}
        self._send(status, headers, data)

    def _fail(self, err: HubError) -> None:
        # X-Error-Message must be header-safe: printable ASCII on one line (a path from the URL may hold %00), short.
        message = re.sub(r"[^\x21-\x7e]+", " ", err.message).strip()[:500]
        headers = {**err.headers, "X-Error-Message": message, **({"X-Error-Code": err.code} if err.code else {})}
        self._reply(err.status, {"error": err.message, **(err.body or {})}, headers)

    def _iter_body(self) -> Iterator[bytes]:
        """The request body in chunks; `huggingface_hub` always sends a `Content-Length`, so chunked bodies get 411."""
        if "Transfer-Encoding" in self.headers:
            raise HubError(411, "Chunked request bodies are not supported; send a Content-Length")
        remaining, self._body_done = _int(self.headers.get("Content-Length") or 0), True
        while remaining > 0:
            if not (chunk := self.rfile.read(min(remaining, 1 << 20))):
                raise HubError(400, "Request body ended early")
            remaining -= len(chunk)
            yield chunk

    def _body(self) -> bytes:
        if _int(self.headers.get("Content-Length") or 0) > MAX_JSON_BODY:  # left unread: the connection closes
            raise HubError(413, f"Request body over {MAX_JSON_BODY} bytes")
        return b"".join(self._iter_body())

    def _json(self, key: str | None = None, kind: type = str) -> dict[str, Any]:
        """The body, a JSON object ({} if empty); with `key`, its `key` must be a non-empty `kind`."""
        try:
            body = json.loads(self._body() or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise HubError(400, f"Body is not valid JSON: {err}") from None
        if not isinstance(body, dict) or key is not None and (not isinstance(body.get(key), kind) or body[key] == ""):
            raise HubError(400, "Expected a JSON object" + (f" with a {kind.__name__} {key!r}" if key else ""))
        return body

    def _flag(self, name: str) -> bool:
        return self.query.get(name) in ("1", "true", "True")

    def _authorized(self) -> bool:
        return self.server.token is None or self.headers.get("Authorization", "") == f"Bearer {self.server.token}"

    @property
    def _endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    def _dispatch(self) -> None:
        self._body_done = self.headers.get("Content-Length") in (None, "0") and "Transfer-Encoding" not in self.headers
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            method = "GET" if self.command == "HEAD" else self.command
            found = ((m, h) for rm, pattern, h in ROUTES if rm == method and (m := pattern.match(url.path)))
            match, handler = next(found, (None, ""))
            if match is None:
                raise HubError(404, f"No route for {self.command} {url.path}")
            if handler in WRITES and not self._authorized():
                raise HubError(401, UNAUTHORIZED)
            args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            if "repo" in args:
                self._open_repo(REPO_TYPES[args.pop("type", None) or args.pop("prefix", "models")], args.pop("repo"))
            getattr(self, f"do_{handler}")(**args)
        except HubError as err:
            self._fail(err)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except OSError as err:  # the store could not be written: say so, and that nothing was committed
            storage = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
            status, what = (507, "is full") if err.errno in storage else (503, "cannot be written")
            logger.error("storage error for %s %s: %s", self.command, self.path, err)
            message = (f"The Hub's storage {what} ({err.strerror or err}); nothing was committed. Free disk space or "
                       "fix the server's --root permissions, then retry.")  # fmt: skip
            self._fail(HubError(status, message))
        except Exception:  # a bug must not leak a stack trace to the client
            logger.exception("Unhandled error for %s %s", self.command, self.path)
            self._fail(HubError(500, "Internal server error"))

    do_GET = do_HEAD = do_POST = do_PUT = _dispatch

    def _open_repo(self, rtype: str, repo: str, exists: bool = True) -> None:
        """Check the id and, with `exists`, that the repo exists (a private one looks missing without the token)."""
        if not REPO_ID_RE.match(repo) or "--" in repo or ".." in repo:
            raise HubError(400, f"Invalid repo id {repo!r}: use 'namespace/name' with letters, digits, '-_.'")
        self.rtype, self.repo, self.rdir = rtype, repo, self.server.store.repo_dir(rtype, repo)
        self.meta = _read(self.rdir / "repo.json") if exists else {}
        if self.meta is None or self.meta.get("private") and not self._authorized():
            raise HubError(404, f"Repository {repo} not found", "RepoNotFound")

    def _commit(self, rev: Any) -> dict[str, Any]:
        return self.server.store.resolve(self.rdir, str(rev))

    # -- account and repos
    def do_whoami(self) -> None:
        if not self.headers.get("Authorization", "").startswith("Bearer ") or not self._authorized():
            raise HubError(401, UNAUTHORIZED)
        auth = {"type": "access_token", "accessToken": {"displayName": "offline", "role": "write"}}
        self._reply(200, {"type": "user", "id": USER, "name": USER, "fullname": USER, "orgs": [], "auth": auth})

    def do_create_repo(self) -> None:
        body = self._json("name")
        if (rtype := str(body.get("type") or "model")) not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type {rtype!r:.50}; use one of {sorted(URL_PREFIX)}")
        self._open_repo(rtype, f"{body.get('organization') or USER}/{body['name']}", exists=False)
        url = f"{self._endpoint}/{URL_PREFIX[rtype]}{self.repo}"
        private = bool(body.get("private")) or body.get("visibility") == "private"
        meta = {"id": self.repo, "type": rtype, "private": private, "createdAt": _now()}
        if not self.server.store.create(self.rdir, meta):  # 409 with the url: `exist_ok=True` reads it
            raise HubError(409, f"You already created this {rtype} repo: {self.repo}", body={"url": url})
        self._reply(200, {"url": url, "name": self.repo, "id": self.repo})

    def do_validate_yaml(self) -> None:
        try:
            _card_meta(self._json("content")["content"])
        except HubError as err:  # the Hub also lists the problems
            raise HubError(400, err.message, body={"errors": [{"message": err.message}], "warnings": []}) from None
        self._reply(200, {"errors": [], "warnings": []})

    # -- uploads
    def do_preupload(self, rev: str) -> None:
        files, current, out = self._json("files", list)["files"], self._commit(rev)["files"], []
        for f in files:
            if not isinstance(f, dict) or not isinstance(f.get("path"), str):
                raise HubError(400, "Expected {'files': [{'path', 'size', 'sample'}]}")
            try:
                sample = base64.b64decode(f.get("sample") or "")
            except (TypeError, ValueError):
                raise HubError(400, f"File {f['path']!r}: 'sample' is not base64") from None
            lfs = _int(f.get("size") or 0) > LFS_THRESHOLD or b"\0" in sample
            known = current.get(f["path"])
            oid = None if known is None or known["lfs"] != lfs else (known["sha256"] if lfs else known["oid"])
            out.append(
                {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self._reply(200, {"files": out, "commitOid": None})

    def do_lfs_batch(self) -> None:
        body = self._json("objects", list)
        if body.get("operation") != "upload":
            raise HubError(400, "Only LFS 'upload' batches are served")
        out = []
        for obj in body["objects"]:
            oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
            if not isinstance(oid, str) or not SHA256_RE.fullmatch(oid) or not isinstance(size, int):
                raise HubError(400, f"LFS objects need a sha256 'oid' and an int 'size', got {obj!r:.200}")
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            blob = self.server.store.blob_path(oid)
            if not (blob.exists() and blob.stat().st_size == size):
                ticket = secrets.token_urlsafe(24)
                self.server.tickets[ticket] = (oid, size)
                item["actions"] = {"upload": {"href": f"{self._endpoint}/_lfs/upload/{ticket}", "expires_in": 86400}}
            out.append(item)
        self._reply(200, {"transfer": "basic", "objects": out, "hash_algo": "sha256"})

    def do_lfs_put(self, ticket: str) -> None:
        if (expected := self.server.tickets.get(ticket)) is None:
            raise HubError(403, "Unknown or expired LFS upload URL; ask the batch endpoint again")
        (oid, size), store, digest = expected, self.server.store, hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=store.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in self._iter_body():
                    digest.update(chunk)
                    f.write(chunk)
                got = f.tell()
            if (got, digest.hexdigest()) != (size, oid):
                raise HubError(400, f"Upload does not match its LFS pointer: got sha256 {digest.hexdigest()} and "
                                    f"{got} bytes, expected {oid} and {size} bytes")  # fmt: skip
            (dest := store.blob_path(oid)).parent.mkdir(exist_ok=True)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        self.server.tickets.pop(ticket, None)
        self._reply(200, {}, {"ETag": f'"{oid}"'})

    def do_commit(self, rev: str) -> None:
        if self._flag("create_pr"):
            raise HubError(400, "Pull requests are not supported by this offline Hub; commit to a branch")
        try:
            items = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise HubError(400, f"Commit body is not NDJSON: {err}") from None
        if not items or not isinstance(items[0], dict) or items[0].get("key") != "header":
            raise HubError(400, "Commit body must start with a {'key': 'header', 'value': {...}} line")
        header = items[0].get("value") if isinstance(items[0].get("value"), dict) else {}
        sha = self.server.store.commit(self.rdir, rev, header, items[1:])
        logger.info("commit %s on %s %s@%s: %s", sha[:8], self.rtype, self.repo, rev, header.get("summary"))
        url = f"{self._endpoint}/{URL_PREFIX[self.rtype]}{self.repo}/commit/{sha}"
        self._reply(200, {"success": True, "commitOid": sha, "commitUrl": url, "pullRequestUrl": None})

    # -- downloads
    def do_info(self, rev: str = "main") -> None:
        commit, meta, card, blobs = self._commit(rev), self.meta, {}, self._flag("blobs")
        if readme := commit["files"].get("README.md"):
            with contextlib.suppress(HubError):  # a README without valid metadata has no card data
                card = _card_meta(self.server.store.blob_path(readme["sha256"]).read_text(errors="replace"))
        siblings = [
            {"rfilename": p, **({"size": i["size"], "blobId": i["oid"], "lfs": _lfs(i)} if blobs else {})}
            for p, i in commit["files"].items()
        ]
        self._reply(200, {
            "_id": self.repo, "id": self.repo, "modelId": self.repo, "author": self.repo.split("/")[0],
            "sha": commit["id"], "lastModified": commit["date"], "createdAt": meta["createdAt"],
            "private": meta["private"], "gated": False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": card.get("tags") or [], "library_name": card.get("library_name"), "cardData": card or None,
            "siblings": siblings,
        })  # fmt: skip

    def do_refs(self) -> None:
        refs, out = _read(self.rdir / "refs.json"), {"converts": [], "pullRequests": []}
        for kind, git in (("branches", "heads"), ("tags", "tags")):
            out[kind] = [
                {"name": n, "ref": f"refs/{git}/{n}", "targetCommit": s} for n, s in sorted(refs[kind].items())
            ]
        self._reply(200, out)

    def do_commits(self, rev: str) -> None:
        commit, out = self._commit(rev), []
        while commit is not None:
            out.append({"id": commit["id"], "title": commit["title"], "message": commit["message"],
                        "authors": [{"user": commit["author"]}], "date": commit["date"]})  # fmt: skip
            commit = self.server.store.record(self.rdir, commit["parents"][0]) if commit["parents"] else None
        self._reply(200, out)

    def do_tree(self, rev: str, path: str = "") -> None:
        entries = _listing(self._commit(rev), path, self._flag("recursive"))
        if path.strip("/") and not entries:
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        self._reply(200, entries)

    def do_resolve(self, rev: str, path: str) -> None:
        commit = self._commit(rev)
        if (info := commit["files"].get(path)) is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit["id"]})
        etag = info["sha256"] if info["lfs"] else info["oid"]  # for LFS files, what the Hub's X-Linked-Etag holds
        headers = {"X-Repo-Commit": commit["id"], "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
        status, size, start, end = 200, info["size"], 0, info["size"] - 1
        if rng := self.headers.get("Range"):  # resumed downloads, safetensors metadata, HfFileSystem reads
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m and m[1]:
                start, end = int(m[1]), min(int(m[2]), end) if m[2] else end
            elif m and m[2]:
                start = max(size - int(m[2]), 0)
            if not m or not (m[1] or m[2]) or start > end:
                raise HubError(416, f"Range {rng!r} not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            status, headers["Content-Range"] = 206, f"bytes {start}-{end}/{size}"
        self._send(status, {**headers, "Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)})
        if self.command != "HEAD":
            with open(self.server.store.blob_path(info["sha256"]), "rb") as f:
                self.connection.sendfile(f, start, end - start + 1)


class HubServer(ThreadingHTTPServer):
    """The offline Hub: serves `root` (created if missing) on `host:port`.

    The port is bound on construction (`port=0` picks a free one; read `.endpoint`). Serve from a background thread
    with `start()`/`stop()` or as a context manager, or (the CLI) call `serve_forever()`. With `token`, writes (and
    reads of private repos) need `Authorization: Bearer <token>`, else 401; without it, any token is accepted.
    """

    daemon_threads = True  # a stuck client never blocks shutdown

    def __init__(self, root: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        super().__init__((host, port), _Handler)
        self.root, self.token, self.store = Path(root), token, HubStore(root)
        self.tickets: dict[str, tuple[str, int]] = {}  # LFS upload URL ticket -> (sha256, size)
        self.connections: set[socket.socket] = set()  # open ones, idle keep-alive included: `stop` closes them
        self._thread = threading.Thread(target=self.serve_forever, name=f"hub-server-{self.server_port}", daemon=True)

    @property
    def endpoint(self) -> str:
        """The URL to put in `HF_ENDPOINT`, e.g. `http://127.0.0.1:8080`."""
        host = self.server_address[0]
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.server_port}"

    def start(self) -> HubServer:
        self._thread.start()
        logger.info("offline Hub serving %s at %s", self.root, self.endpoint)
        return self

    def stop(self) -> None:
        """Stop the `start()` thread, if any, and close the socket and every connection (idle keep-alive ones too, or
        pooled clients would still be answered)."""
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join(timeout=10)
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.server_close()

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_hub(root: str | os.PathLike[str], port: int = 0, token: str | None = None) -> Iterator[str]:
    """Run a `HubServer` on 127.0.0.1 for the duration of the block and yield its endpoint string."""
    with HubServer(root, port=port, token=token) as server:
        yield server.endpoint

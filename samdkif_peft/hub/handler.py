"""The offline Hub's HTTP side: routes the Hub API requests `huggingface_hub` sends to a `HubStore`.

Every failure leaves as a Hub-shaped JSON error (`HubError`), never a stack trace or an HTML page, so clients raise
their usual `HfHubHTTPError` subclasses with a message.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import logging
import re
import secrets
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from samdkif_peft.hub.store import SHA256_RE, USER, HubError, lfs_info, timestamp, tree_entries


if TYPE_CHECKING:
    from samdkif_peft.hub.server import HubServer


logger = logging.getLogger(__name__)

LFS_THRESHOLD = 10_000_000  # bytes; the Hub refuses regular (inline) files above 10 MB
MAX_JSON_BODY = 1 << 30  # inline commits carry base64 files in memory; refuse anything bigger
UNAUTHORIZED = "Invalid credentials in Authorization header"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
REPO_ID_RE = re.compile(r"^(?:\w[\w.-]{0,95}/)?\w[\w.-]{0,95}$")

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


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise HubError(400, f"Malformed length in request: {value!r:.50}") from None


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


class HubRequestHandler(BaseHTTPRequestHandler):
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
            message = (
                f"The Hub's storage {what} ({err.strerror or err}); nothing was committed. Free disk space or "
                "fix the server's --root permissions, then retry."
            )
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
        self.meta = self.server.store.repo_meta(self.rdir) if exists else {}
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
        meta = {"id": self.repo, "type": rtype, "private": private, "createdAt": timestamp()}
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
        oid, size = expected
        self.server.store.put_blob(self._iter_body(), oid, size)
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
            {"rfilename": p, **({"size": i["size"], "blobId": i["oid"], "lfs": lfs_info(i)} if blobs else {})}
            for p, i in commit["files"].items()
        ]
        info = {"_id": self.repo, "id": self.repo, "modelId": self.repo, "author": self.repo.split("/")[0]}
        info |= {"sha": commit["id"], "lastModified": commit["date"], "createdAt": meta["createdAt"]}
        info |= {"private": meta["private"], "gated": False, "disabled": False, "downloads": 0, "likes": 0}
        info |= {"tags": card.get("tags") or [], "library_name": card.get("library_name"), "cardData": card or None}
        self._reply(200, {**info, "siblings": siblings})

    def do_refs(self) -> None:
        refs, out = self.server.store.refs(self.rdir), {"converts": [], "pullRequests": []}
        for kind, git in (("branches", "heads"), ("tags", "tags")):
            out[kind] = [
                {"name": n, "ref": f"refs/{git}/{n}", "targetCommit": s} for n, s in sorted(refs[kind].items())
            ]
        self._reply(200, out)

    def do_commits(self, rev: str) -> None:
        commit, out = self._commit(rev), []
        while commit is not None:
            entry = {"id": commit["id"], "title": commit["title"], "message": commit["message"]}
            out.append({**entry, "authors": [{"user": commit["author"]}], "date": commit["date"]})
            commit = self.server.store.record(self.rdir, commit["parents"][0]) if commit["parents"] else None
        self._reply(200, out)

    def do_tree(self, rev: str, path: str = "") -> None:
        entries = tree_entries(self._commit(rev), path, self._flag("recursive"))
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

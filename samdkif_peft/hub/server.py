"""A small Hub-compatible HTTP server, so the real `huggingface_hub`, peft and transformers work without internet.

It speaks the part of the Hub API that `huggingface_hub` 2.x uses to create repos, commit (small text files inline,
large or binary ones through the basic LFS transfer), download, and read repo info, trees, refs and history; models,
datasets and spaces alike. Xet is not served: clients set `HF_HUB_DISABLE_XET=1`. Left out, as nothing here needs
them: deleting repos, creating branches and tags (all commits go to `main`), pull requests, `paths-info`.

Requests are answered by `handler.HubRequestHandler` from a `store.HubStore` (content-addressed blobs and JSON commit
records; the on-disk layout is described there). This module starts and stops the server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from samdkif_peft.hub.handler import HubRequestHandler
from samdkif_peft.hub.store import HubStore


logger = logging.getLogger(__name__)


class HubServer(ThreadingHTTPServer):
    """The offline Hub: serves `root` (created if missing) on `host:port`.

    The port is bound on construction (`port=0` picks a free one; read `.endpoint`). Serve from a background thread
    with `start()`/`stop()` or as a context manager, or (the CLI) call `serve_forever()`. With `token`, writes (and
    reads of private repos) need `Authorization: Bearer <token>`, else 401; without it, any token is accepted.
    """

    daemon_threads = True  # a stuck client never blocks shutdown

    def __init__(self, root: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        super().__init__((host, port), HubRequestHandler)
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

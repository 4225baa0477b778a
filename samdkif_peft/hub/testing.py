"""pytest plugin: every test talks to an offline Hub, never to huggingface.co.

`huggingface_hub` reads `HF_ENDPOINT`, `HF_HUB_DISABLE_XET`, `HF_HOME` and `HF_HUB_OFFLINE` once, at import, so this
module must be imported before it: list it in `tests/conftest.py` as `pytest_plugins = ["samdkif_peft.hub.testing"]`.
On import it reserves a free 127.0.0.1 port and points the environment at it; the `hub_server` fixture then starts
the server on that port. Anything imported later (peft, transformers, a child process) uses it unchanged.

Usage from any test:

    def test_roundtrip(hub_server, hub_repo_id):
        model.push_to_hub(hub_repo_id)                   # HF_ENDPOINT is already this server
        out = run_in_fresh_process(f"from peft import ...; ...{hub_repo_id!r}...")
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from samdkif_peft.hub.server import HubServer


TEST_TOKEN = "hf_offline_test_token"  # dummy: the session server accepts any token
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _reserve_port() -> int:
    """A free port now; a tiny race with other processes remains until the server binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _local_port(endpoint: str | None) -> int | None:
    url = urlsplit(endpoint or "")
    return url.port if url.scheme == "http" and url.hostname == "127.0.0.1" else None


def _configure_environment() -> int:
    """Point every Hub client in this process and its children at the offline Hub; return its port.

    An `HF_ENDPOINT=http://127.0.0.1:<port>` set earlier (by a conftest that runs before `import samdkif_peft`
    pulls in huggingface_hub, or by the shell) is kept, so the server starts where the clients already point.
    """
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        port = _local_port(constants.ENDPOINT)
        if port is None or not constants.HF_HUB_DISABLE_XET:
            raise RuntimeError(
                f"huggingface_hub was imported before samdkif_peft.hub.testing with endpoint {constants.ENDPOINT!r} "
                f"and HF_HUB_DISABLE_XET={constants.HF_HUB_DISABLE_XET}; it reads both once, at import, so tests "
                "would not reach the offline Hub. Set HF_ENDPOINT=http://127.0.0.1:<free port> and "
                "HF_HUB_DISABLE_XET=1 at the top of tests/conftest.py (before anything imports samdkif_peft, peft, "
                "transformers or huggingface_hub), or export them before running pytest."
            )
    else:
        port = _local_port(os.environ.get("HF_ENDPOINT")) or _reserve_port()
    preset = _local_port(os.environ.get("HF_ENDPOINT")) == port  # keep a preset cache and token too
    if not (preset and os.environ.get("HF_HOME")):
        home = tempfile.mkdtemp(prefix="samdkif-hf-home-")
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        os.environ.update(HF_HOME=home, HF_HUB_CACHE=os.path.join(home, "hub"))
    if not (preset and os.environ.get("HF_TOKEN")):
        os.environ["HF_TOKEN"] = TEST_TOKEN
    os.environ.update(
        {
            "HF_ENDPOINT": f"http://127.0.0.1:{port}",
            "HF_HUB_DISABLE_XET": "1",  # the offline Hub has no Xet storage
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HUB_OFFLINE": "0",  # the Hub is local, so "offline" machines can still use it
            "TRANSFORMERS_OFFLINE": "0",
        }
    )
    return port


HUB_PORT = _configure_environment()
HUB_ENDPOINT = f"http://127.0.0.1:{HUB_PORT}"


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """The session's offline Hub on `HUB_ENDPOINT` (= `HF_ENDPOINT`); repos persist for the whole session."""
    with HubServer(tmp_path_factory.mktemp("offline-hub"), port=HUB_PORT) as server:
        yield server


@pytest.fixture
def hub_repo_id(hub_server: HubServer) -> str:
    """A fresh `user/test-<hex>` repo id (not created), so tests sharing the session server never collide."""
    return f"user/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def token_hub_server(tmp_path: Path) -> Iterator[HubServer]:
    """A second offline Hub on its own port whose writes need `server.token`; pass `endpoint=server.endpoint`."""
    with HubServer(tmp_path / "token-hub", token="hf_site_write_token") as server:
        yield server


def run_in_fresh_process(code: str, *, env: dict[str, str] | None = None, timeout: float = 180) -> str:
    """Run `code` in a new Python interpreter with this session's Hub environment; return its stdout.

    A fresh process proves a load works from the Hub alone (no in-memory state, no modules already imported).
    The session server must be running, so request the `hub_server` fixture in the calling test. `env` overrides
    variables, e.g. `{"HF_HUB_CACHE": str(tmp_path)}` for an empty download cache.

    Raises:
        `RuntimeError`: if the process exits non-zero, with its stderr.
    """
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), child_env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fresh process exited with {proc.returncode}:\n{proc.stderr[-6000:]}")
    return proc.stdout

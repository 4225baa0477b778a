"""The offline Hub under load and faults: a real server process, the real `huggingface_hub` client, loopback only.

- 8 clients push 1 kB-11 MB files and read every one back for `SAMDKIF_HUB_LOAD_SECONDS` (default 30) seconds; every
  file comes back byte-identical and the server's resident memory stays bounded.
- `SIGKILL` in the middle of a 200 MB LFS upload, then a restart on the same storage: earlier commits intact, no
  partial file anywhere, and the retried upload succeeds.
- A full disk (the server's file-size limit, `RLIMIT_FSIZE`, below the upload) answers a Hub-shaped 507 with a
  message, commits nothing and leaves no temporary file; a store remounted read-only under the running server
  answers 503, still serves reads, and is consistent afterwards (skipped where bind mounts are not allowed).

Run with `pytest -m slow tests/test_hub_faults_slow.py` (about a minute plus the load duration).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
LOAD_SECONDS = float(os.environ.get("SAMDKIF_HUB_LOAD_SECONDS", "30"))


class Server:
    """`samdkif hub serve` in a child process; `kill()` is SIGKILL, `start()` restarts it on the same root/port."""

    def __init__(self, root: Path, port: int = 0, file_size_limit: int | None = None):
        self.root, self.port, self.limit = root, port, file_size_limit
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""

    def start(self) -> Server:
        def limits():
            if self.limit is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
                resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.limit))

        cmd = [sys.executable, "-m", "samdkif_cli", "hub", "serve", "--root", str(self.root), "--port", str(self.port)]
        # the server logs every request: to a file, since an unread pipe fills up and blocks the server
        self.log = open(self.root.parent / f"{self.root.name}-server.log", "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     preexec_fn=limits)  # fmt: skip
        line = self.proc.stdout.readline()
        match = re.search(r"Offline Hub at (http://[\d.]+:(\d+))", line)
        assert match, line + Path(self.log.name).read_text()
        self.endpoint, self.port = match.group(1), int(match.group(2))
        return self

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()


def _api(server: Server):
    from huggingface_hub import HfApi

    return HfApi(endpoint=server.endpoint, token="hf_offline_test_token")


def _download(server: Server, repo: str, filename: str, cache: Path, revision: str | None = None) -> bytes:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo, filename, revision=revision, endpoint=server.endpoint, cache_dir=str(cache),
                           token="hf_offline_test_token")  # fmt: skip
    return Path(path).read_bytes()


def test_eight_clients_push_and_read_back_with_bounded_memory(tmp_path):
    server = Server(tmp_path / "hub").start()
    try:
        baseline = server.rss_mb()
        peak, errors, checked = [baseline], [], []
        stop = time.monotonic() + LOAD_SECONDS

        def client(i: int) -> None:
            rng = random.Random(i)
            api, repo = _api(server), f"load/client-{i}"
            api.create_repo(repo, exist_ok=True)
            n = 0
            while time.monotonic() < stop:
                data = rng.randbytes(rng.choice([1 << 10, 1 << 16, 1 << 20, 11 << 20]))
                name = f"f{n}.bin"
                commit = api.upload_file(path_or_fileobj=data, path_in_repo=name, repo_id=repo)
                back = _download(server, repo, name, tmp_path / f"cache-{i}", revision=commit.oid)
                if hashlib.sha256(back).digest() != hashlib.sha256(data).digest():
                    errors.append(f"{repo}/{name} came back different")
                checked.append(len(data))
                n += 1

        def sample() -> None:
            while time.monotonic() < stop:
                peak.append(server.rss_mb())
                time.sleep(0.5)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)] + [threading.Thread(target=sample)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=LOAD_SECONDS + 600)
        print(
            f"\nload: {len(checked)} round trips, {sum(checked) / 2**20:.0f} MiB pushed and read back in "
            f"{LOAD_SECONDS:.0f} s; server RSS {baseline:.0f} -> peak {max(peak):.0f} MiB"
        )
        assert not errors, errors[:5]
        assert len(checked) >= 8  # every client finished at least one round trip
        # bounded: streaming uploads and downloads, not the sum of everything pushed
        assert max(peak) - baseline < 256, (baseline, max(peak), sum(checked) / 2**20)
        assert not list((tmp_path / "hub" / "tmp").iterdir())
    finally:
        server.stop()


def test_sigkill_during_a_large_lfs_upload_then_restart(tmp_path):
    server = Server(tmp_path / "hub").start()
    api, repo = _api(server), "faults/kill"
    api.create_repo(repo)
    small = os.urandom(4096)
    first = api.upload_file(path_or_fileobj=small, path_in_repo="small.bin", repo_id=repo).oid
    big = os.urandom(200 * 2**20)
    failure = []

    def upload() -> None:
        try:
            _api(server).upload_file(path_or_fileobj=big, path_in_repo="big.bin", repo_id=repo)
        except Exception as err:  # noqa: BLE001 - the connection dies with the server
            failure.append(err)

    thread = threading.Thread(target=upload)
    thread.start()
    tmp = tmp_path / "hub" / "tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.stat().st_size > 0 for p in tmp.iterdir()):
        time.sleep(0.01)  # wait until the LFS body is being received
    server.kill()
    thread.join(timeout=120)
    assert failure, "the upload finished before the server was killed; nothing was tested"
    server.start()  # same root, same port
    try:
        assert not list(tmp.iterdir())  # the cut-off upload is gone
        assert "big.bin" not in _api(server).list_repo_files(repo)
        assert _download(server, repo, "small.bin", tmp_path / "c1", revision=first) == small
        commit = _api(server).upload_file(path_or_fileobj=big, path_in_repo="big.bin", repo_id=repo)
        assert hashlib.sha256(_download(server, repo, "big.bin", tmp_path / "c2", revision=commit.oid)).digest() == (
            hashlib.sha256(big).digest()
        )
    finally:
        server.stop()


def test_full_disk_gives_a_hub_shaped_error_and_commits_nothing(tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    server = Server(tmp_path / "hub", file_size_limit=5 * 2**20).start()
    try:
        api, repo = _api(server), "faults/full"
        api.create_repo(repo)
        first = api.upload_file(path_or_fileobj=b"fits", path_in_repo="a.txt", repo_id=repo).oid
        with pytest.raises(Exception) as caught:  # huggingface_hub wraps the LFS failure in a RuntimeError
            api.upload_file(path_or_fileobj=os.urandom(8 * 2**20), path_in_repo="big.bin", repo_id=repo)
        err = caught.value
        while err is not None and not isinstance(err, HfHubHTTPError):
            err = err.__cause__ or err.__context__
        assert err is not None and err.response.status_code == 507
        assert "storage is full" in err.response.headers.get("X-Error-Message", "")
        assert "nothing was committed" in str(caught.value.__cause__ or caught.value)
        assert "big.bin" not in api.list_repo_files(repo)
        assert _api(server).model_info(repo).sha == first  # nothing committed
        assert not list((tmp_path / "hub" / "tmp").iterdir())
    finally:
        server.stop()


def test_read_only_disk_gives_a_hub_shaped_error_and_reads_still_work(tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    store = tmp_path / "hub"
    server = Server(store).start()
    mounted = False
    try:
        api, repo = _api(server), "faults/readonly"
        api.create_repo(repo)
        first = api.upload_file(path_or_fileobj=b"before", path_in_repo="a.txt", repo_id=repo).oid
        # remount the store read-only under the running server (root bypasses file permissions, not this)
        for cmd in (["mount", "--bind", str(store), str(store)], ["mount", "-o", "remount,ro,bind", str(store)]):
            if subprocess.run(cmd, capture_output=True).returncode != 0:
                pytest.skip("cannot bind-mount read-only here (needs root with mount rights)")
            mounted = True
        with pytest.raises(Exception) as caught:
            api.upload_file(path_or_fileobj=b"after", path_in_repo="b.txt", repo_id=repo)
        err = caught.value
        while err is not None and not isinstance(err, HfHubHTTPError):
            err = err.__cause__ or err.__context__
        assert err is not None and err.response.status_code == 503, caught.value
        assert "storage cannot be written" in err.response.headers.get("X-Error-Message", "")
        assert _download(server, repo, "a.txt", tmp_path / "c", revision=first) == b"before"  # reads still work
    finally:
        if mounted:
            subprocess.run(["umount", str(store)], check=False)
        server.stop()
    server = Server(store).start()  # the store is consistent afterwards
    try:
        assert _api(server).model_info(repo).sha == first
        assert "b.txt" not in _api(server).list_repo_files(repo)
    finally:
        server.stop()

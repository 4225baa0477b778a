"""Small helpers shared by the tuner, the skill loader, the data build and the benchmarks."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import tempfile


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks (weights and wheels are too big to read at once)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def atomic_write_text(path: str, text: str) -> None:
    """Write to a temp file in the same directory, fsync, then rename: readers see the old or the new file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_copy(src: str, dst: str) -> None:
    """Copy through a temp file and rename, so a crash never leaves a half-copied `dst`."""
    directory = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(dst))
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cpu_description() -> str:
    """The CPU model, its family/model/stepping and its bf16 units (e.g. "AMD EPYC 9R14 [25/17/1] (avx512_bf16)"),
    recorded beside every timing and result: bf16 speed, and so every ratio to a bf16 base model, depends on the
    units (AMX vs AVX-512 vs none), and a virtual machine's "model name" alone does not tell two hosts apart, whose
    bf16 kernels can round differently (docs/DEFAULTS.md)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine() or "unknown"
    first = info[: info.index("")] if "" in info else info  # the first processor's block
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first)}
    units = [f for f in ("amx_bf16", "avx512_bf16") if f in fields.get("flags", "").split()]
    ident = "/".join(fields.get(k) or "?" for k in ("cpu family", "model", "stepping"))
    return f"{fields.get('model name') or platform.machine()} [{ident}] ({', '.join(units) or 'no bf16 units'})"

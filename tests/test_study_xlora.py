"""The study's X-LoRA baseline loads as trained: its classifier (peft 0.21.2 saves none of it) and its skills in the
trained order (peft reloads them in the sorted-key order of `adapter_config.json`: "0", "1", "10", "11", "2", ...)."""

import sys
from pathlib import Path

import pytest
import torch

from .conftest import load_base, make_lora_skill


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
study = pytest.importorskip("study_label_tasks")


def test_xlora_round_trips_exactly_with_more_than_ten_skills(tiny_assets, tmp_path, inputs):
    from peft import XLoraConfig, get_peft_model

    base = tiny_assets["base"]
    skills = {str(i): make_lora_skill(base, str(tmp_path / f"skill-{i}"), seed=10 + i) for i in range(12)}
    model = load_base(base)
    model.config.use_cache = False
    model = get_peft_model(model, XLoraConfig(task_type="CAUSAL_LM", hidden_size=32, adapters=skills)).eval()
    with torch.no_grad():  # a "trained" classifier: far from its initialisation
        for param in model.base_model.internal_xlora_classifier.parameters():
            param.copy_(torch.randn_like(param) * 3)
        expected = model(**inputs).logits
    folder = tmp_path / "xlora"
    model.save_pretrained(folder)
    study.save_xlora_classifier(model, folder)

    fresh = load_base(base)
    fresh.config.use_cache = False
    loaded = study.load_xlora(fresh, folder).eval()
    trained = model.base_model.internal_xlora_classifier.state_dict()
    for key, value in loaded.base_model.internal_xlora_classifier.state_dict().items():
        assert torch.equal(value, trained[key]), key
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, expected)


def test_missing_classifier_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="xlora_classifier.safetensors"):
        study._load_xlora_classifier(None, tmp_path)


def test_cached_generation_equals_peft_uncached_greedy_decoding(tiny_assets, tmp_path):
    """`CachedXLora.generate` keeps one KV cache per X-LoRA pass; peft re-runs both passes over the whole sequence
    for every token. Same tokens on a left-padded batch of two prompts of different lengths."""
    from peft import XLoraConfig, get_peft_model

    base = tiny_assets["base"]
    skills = {str(i): make_lora_skill(base, str(tmp_path / f"skill-{i}"), seed=20 + i) for i in range(3)}
    model = load_base(base)
    model.config.use_cache = False
    model = get_peft_model(model, XLoraConfig(task_type="CAUSAL_LM", hidden_size=32, adapters=skills)).eval()
    with torch.no_grad():
        for param in model.base_model.internal_xlora_classifier.parameters():
            param.copy_(torch.randn_like(param) * 3)
    torch.manual_seed(5)
    input_ids = torch.randint(3, 96, (2, 9))
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, :4], attention_mask[1, :4] = 0, 0  # left padding
    kwargs = dict(max_new_tokens=12, pad_token_id=0, eos_token_id=1)
    expected = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False, **kwargs)
    cached = study.CachedXLora(model)
    got = cached.generate(input_ids, attention_mask, **kwargs)
    assert torch.equal(got, expected[:, : got.shape[1]])
    assert got.shape[1] == input_ids.shape[1] + 12 or (got[:, input_ids.shape[1] :] == 1).any()
    # the classifier decides: another classifier decodes other tokens
    with torch.no_grad():
        for param in model.base_model.internal_xlora_classifier.parameters():
            param.copy_(torch.randn_like(param) * 3)
    assert not torch.equal(cached.generate(input_ids, attention_mask, **kwargs), got)

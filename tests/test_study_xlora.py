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


@pytest.mark.parametrize(
    "options",
    [
        {},
        {
            "layerwise_scalings": True,
            "top_k_lora": 2,
            "enable_softmax_topk": True,
            "scaling_pass_value": 0.5,
            "softmax_temperature": 0.5,
        },
    ],  # fmt: skip
    ids=["defaults", "layerwise-topk-scalingpass"],
)
def test_cached_generation_equals_peft_uncached_greedy_decoding(tiny_assets, tmp_path, options):
    """`CachedXLora.generate` keeps one KV cache per X-LoRA pass; peft re-runs both passes over the whole sequence
    for every token. The same tokens on a left-padded batch of two prompts of different lengths, rows stopping at EOS
    at different steps."""
    from peft import XLoraConfig, get_peft_model

    base = tiny_assets["base"]
    skills = {str(i): make_lora_skill(base, str(tmp_path / f"skill-{i}"), seed=20 + i) for i in range(3)}
    model = load_base(base)
    model.config.use_cache = False
    config = XLoraConfig(task_type="CAUSAL_LM", hidden_size=32, adapters=skills, **options)
    model = get_peft_model(model, config).eval()
    with torch.no_grad():
        for param in model.base_model.internal_xlora_classifier.parameters():
            param.copy_(torch.randn_like(param) * 3)
    torch.manual_seed(5)
    input_ids = torch.randint(3, 96, (2, 9))
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, :4], attention_mask[1, :4] = 0, 0  # left padding
    cached = study.CachedXLora(model)
    free = cached.generate(input_ids, attention_mask, max_new_tokens=12, pad_token_id=0, eos_token_id=95)
    eos = int(free[0, 9 + 5])  # a token that row 0 emits at its sixth step: it stops there, row 1 goes on
    kwargs = dict(max_new_tokens=12, pad_token_id=0, eos_token_id=eos)
    expected = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False, **kwargs)
    got = cached.generate(input_ids, attention_mask, **kwargs)
    assert torch.equal(got, expected)
    assert (got[0, 9 + 6 :] == 0).all() and got.shape[1] > 9 + 6
    # the classifier decides: another classifier decodes other tokens
    with torch.no_grad():
        for param in model.base_model.internal_xlora_classifier.parameters():
            param.copy_(torch.randn_like(param) * 3)
    assert not torch.equal(cached.generate(input_ids, attention_mask, **kwargs), got)
    with pytest.raises(ValueError, match="left padding"):
        cached.generate(input_ids.flip(1), attention_mask.flip(1), **kwargs)
    with pytest.raises(ValueError, match="greedily"):
        cached.generate(input_ids, attention_mask, do_sample=True, **kwargs)

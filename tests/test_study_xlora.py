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

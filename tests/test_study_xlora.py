"""The study's X-LoRA baseline keeps its trained classifier through save -> load (peft 0.21.2 saves none of it)."""

import sys
from pathlib import Path

import pytest
import torch

from .conftest import load_base, make_lora_skill


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
study = pytest.importorskip("study_label_tasks")


def test_xlora_classifier_round_trips_exactly(tiny_assets, tmp_path, inputs):
    from peft import PeftModel, XLoraConfig, get_peft_model

    base = tiny_assets["base"]
    skills = {str(i): make_lora_skill(base, str(tmp_path / f"skill-{i}"), seed=10 + i) for i in range(3)}
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
    loaded = PeftModel.from_pretrained(fresh, folder).eval()
    study.load_xlora_classifier(loaded, folder)
    trained = model.base_model.internal_xlora_classifier.state_dict()
    for key, value in loaded.base_model.internal_xlora_classifier.state_dict().items():
        assert torch.equal(value, trained[key]), key
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, expected)


def test_missing_classifier_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="xlora_classifier.safetensors"):
        study.load_xlora_classifier(None, tmp_path)

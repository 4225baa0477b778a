"""The training side of the medical pipeline on tiny assets: completion collator, train_skill, train_router, CLI.

A character-level tokenizer built offline (pad == eos, like SmolLM2) and the tiny Llama of conftest stand in for
SmolLM2; the records are hand-written `context/query/output` rows.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings

import pytest
import torch
from datasets import Dataset, DatasetDict
from peft import AdaLoraConfig, AutoPeftModelForCausalLM, LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER)
from samdkif_peft import SkillRouterConfig
from samdkif_peft.cli import main as samdkif_main
from samdkif_peft.data.templates import format_example
from samdkif_peft.training import DataCollatorForCompletion, tokenize_dataset, train_router, train_skill
from samdkif_peft.training.common import prepare_splits
from samdkif_peft.utils import sha256_file

from .conftest import char_tokenizer as _tokenizer
from .conftest import load_base, save_char_base


FAST = {"max_steps": 4, "per_device_train_batch_size": 4, "save_strategy": "no", "logging_steps": 1, "use_cpu": True}


def _records(kind: str, n: int, offset: int = 0) -> list[dict]:
    """`upper` and `reverse` toy skills; the query says which, the router has to read it from the prompt."""
    words = ["abc", "heart", "lung", "renal", "fever", "drug", "liver", "bone", "skin", "gene", "cell", "brain"]
    rows = []
    for i in range(n):
        w = words[(i + offset) % len(words)]
        out = w.upper() if kind == "upper" else w[::-1]
        rows.append({"context": "", "query": f"{kind} {w}", "output": out, "key": f"{kind}-{i + offset}"})
    return rows


def _dataset(kinds: list[str], n_train: int = 12, n_val: int = 4) -> DatasetDict:
    train = [r for k in kinds for r in _records(k, n_train // len(kinds))]
    val = [r for k in kinds for r in _records(k, n_val // len(kinds), offset=5)]
    return DatasetDict({"train": Dataset.from_list(train), "validation": Dataset.from_list(val)})


@pytest.fixture(scope="module")
def tok():
    return _tokenizer()


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A tiny base model with the char tokenizer saved next to it, and two skills trained by `train_skill`."""
    root = tmp_path_factory.mktemp("pipeline")
    base = save_char_base(root / "base")
    skills = {
        "upper": train_skill("upper", base, root / "skill-upper", dataset=_dataset(["upper"]), dtype=torch.float32,
                             training_args={**FAST, "max_steps": 6}, peft_type="adalora"),  # the paper's recipe
        "reverse": train_skill("reverse", base, root / "skill-reverse", dataset=_dataset(["reverse"]),
                               dtype=torch.float32, training_args=FAST,
                               peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])),
    }  # fmt: skip
    return {"root": root, "base": base, "skills": skills}


def _split(tok, record):
    prompt, target = format_example(record)
    return tok(prompt)["input_ids"], tok(target, add_special_tokens=False)["input_ids"]


# ----------------------------------------------------------------------------------------------------------------
# Collator


def test_collator_masks_prompt_and_padding_exactly(tok):
    records = [_records("upper", 1)[0], {"context": "note", "query": "reverse lung", "output": "gnul"}]
    batch = DataCollatorForCompletion(tok)(records)
    eos = tok.eos_token_id
    assert eos == tok.pad_token_id  # the SmolLM2 situation this collator must survive
    width = batch["input_ids"].shape[1]
    for b, record in enumerate(records):
        prompt, target = _split(tok, record)
        n = len(prompt) + len(target) + 1
        assert batch["input_ids"][b].tolist() == prompt + target + [eos] + [eos] * (width - n)
        assert batch["labels"][b].tolist() == [-100] * len(prompt) + target + [eos] + [-100] * (width - n)
        assert batch["attention_mask"][b].tolist() == [1] * n + [0] * (width - n)
    assert width == max(len(sum(_split(tok, r), [])) + 1 for r in records)  # dynamic padding to the longest


def test_collator_pad_to_multiple_and_pretokenized_rows(tok):
    records = _records("reverse", 3)
    raw = DataCollatorForCompletion(tok, pad_to_multiple_of=16)(records)
    assert raw["input_ids"].shape[1] % 16 == 0
    tokenized = tokenize_dataset(Dataset.from_list(records), tok)
    assert tokenized.column_names == ["input_ids", "labels"]
    again = DataCollatorForCompletion(tok, pad_to_multiple_of=16)(list(tokenized))
    for key in raw:
        assert torch.equal(raw[key], again[key])
    splits = tokenize_dataset(_dataset(["upper"]), tok)
    assert set(splits) == {"train", "validation"} and splits["train"].column_names == ["input_ids", "labels"]
    with pytest.raises(ValueError, match="no labels"):
        DataCollatorForCompletion(tok)([{"input_ids": [3, 4]}])


def test_truncation_cuts_the_context_middle_and_keeps_the_answer(tok):
    context = "HEAD" + "x" * 200 + "TAIL"
    record = {"context": context, "query": "upper lung", "output": "LUNG"}
    prompt, target = _split(tok, record)
    max_length = len(prompt) + len(target) + 1 - 150
    batch = DataCollatorForCompletion(tok, max_length=max_length)([record])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    assert len(ids) == max_length
    assert labels[-len(target) - 1 :] == target + [tok.eos_token_id]  # whole answer and its EOS
    assert labels.count(-100) == len(ids) - len(target) - 1
    text = tok.decode(ids[: len(ids) - len(target) - 1])
    assert text.startswith("### Input:\nHEAD") and "TAIL\n\n### Instruction:\nupper lung\n\n### Response:\n" in text
    assert text.count("x") == 200 - 150  # cut in the middle of the context only


def test_truncation_cuts_a_long_answer_at_its_end(tok):
    record = {"context": "", "query": "copy", "output": "abcdefghij" * 5}
    prompt, target = _split(tok, record)
    batch = DataCollatorForCompletion(tok, max_length=len(prompt) + 10)([record])
    labels = batch["labels"][0].tolist()
    assert labels == [-100] * len(prompt) + target[:10]  # no EOS: the answer does not end there


def test_max_length_too_small_names_the_record_and_the_fix(tok):
    ds = Dataset.from_list([{"context": "some text", "query": "upper lung", "output": "LUNG", "key": "HP:0001"}])
    with pytest.raises(ValueError, match=r"key='HP:0001'.*Raise max_length \(at least \d+\)"):
        tokenize_dataset(ds, tok, max_length=8)
    with pytest.raises(ValueError, match="at least 2"):
        DataCollatorForCompletion(tok, max_length=1)
    with pytest.raises(ValueError, match="expected records with 'query' and 'output'"):
        tokenize_dataset(Dataset.from_list([{"text": "hi"}]), tok)


def test_sequence_router_gate_gets_gradient_from_collated_batch(assets, tok):
    model = get_peft_model(
        load_base(assets["base"]), SkillRouterConfig(skills=assets["skills"], router="sequence", task_type="CAUSAL_LM")
    )
    batch = DataCollatorForCompletion(tok)(_records("upper", 2) + _records("reverse", 2))
    model(**batch).loss.backward()
    gates = {n: p.grad for n, p in model.named_parameters() if "skill_router_" in n and n.endswith("proj.weight")}
    assert gates and all(g is not None and g.abs().sum() > 0 for g in gates.values())

    # Without prompt masking the router sees no prompt: its gate weights get no gradient at all.
    model.zero_grad()
    with pytest.warns(UserWarning, match="sees no prompt"):
        unmasked = {**batch, "labels": batch["input_ids"]}
        model(**unmasked).loss.backward()
    assert all(p.grad.abs().sum() == 0 for n, p in model.named_parameters() if n in gates)


# ----------------------------------------------------------------------------------------------------------------
# train_skill


def test_train_skill_adalora_prunes_saves_and_loads(assets):
    path = assets["skills"]["upper"]
    config = json.loads(open(os.path.join(path, "adapter_config.json")).read())
    assert config["peft_type"] == "ADALORA" and config["base_model_name_or_path"] == assets["base"]
    assert (config["init_r"], config["target_r"], config["lora_alpha"]) == (12, 8, 16)
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    kept = [sum(mask) for mask in config["rank_pattern"].values()]  # the callback was added: the budget shrank
    assert len(kept) == 4 and sum(kept) <= 8 * 4 < 12 * 4
    results = json.loads(open(os.path.join(path, "train_results.json")).read())
    assert results["global_step"] == 6 and results["eval_loss"] > 0 and results["train_samples"] == 12
    assert not os.path.exists(os.path.join(path, "checkpoints", "checkpoint-6"))  # save_strategy="no" in this run

    x = torch.randint(3, 90, (2, 9))
    with torch.no_grad():
        base_logits = load_base(assets["base"])(input_ids=x).logits
        skill = PeftModel.from_pretrained(load_base(assets["base"]), path)
        assert not torch.allclose(skill(input_ids=x).logits, base_logits)


def test_train_skill_resumes_from_checkpoint(assets, tmp_path):
    def run(**kwargs):
        config = AdaLoraConfig(init_r=6, target_r=2, total_step=6, tinit=0, tfinal=2, lora_alpha=8,
                               target_modules=["q_proj", "v_proj"])  # fmt: skip
        args = {**FAST, "max_steps": 6, "save_strategy": "steps", "save_steps": 3, "eval_strategy": "no"}
        return train_skill("upper", assets["base"], tmp_path / "skill", dataset=_dataset(["upper"]),
                           peft_config=config, training_args=args, dtype=torch.float32, **kwargs)  # fmt: skip

    path = run()
    assert sorted(os.listdir(tmp_path / "skill" / "checkpoints")) == ["checkpoint-3", "checkpoint-6"]
    full = load_file(os.path.join(path, "adapter_model.safetensors"))
    # Stopped after step 3, past AdaLoRA's first allocation: peft saved that checkpoint pruned, which the full-rank
    # model cannot load; AdaLoraCheckpointCallback keeps it full rank with the allocator state, so the rerun is exact.
    shutil.rmtree(tmp_path / "skill" / "checkpoints" / "checkpoint-6")
    os.remove(os.path.join(path, "adapter_model.safetensors"))
    run(resume_from_checkpoint=True)
    results = json.loads(open(os.path.join(path, "train_results.json")).read())
    assert results["resumed_from_checkpoint"].endswith("checkpoint-3") and results["global_step"] == 6
    resumed = load_file(os.path.join(path, "adapter_model.safetensors"))
    assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)


def test_train_skill_bad_input(assets, tmp_path):
    with pytest.raises(ValueError, match="Unknown skill 'nope'; valid names: question_answering"):
        train_skill("nope", assets["base"], tmp_path / "x")
    with pytest.raises(FileNotFoundError, match=r"Skill dataset 'nli' is not built.*samdkif data build --skills nli"):
        train_skill("nli", assets["base"], tmp_path / "x", data_dir=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="samdkif model prepare"):
        train_skill("upper", str(tmp_path / "no-model"), tmp_path / "x", dataset=_dataset(["upper"]))
    with pytest.raises(ValueError, match="please pass use_dora=False"):
        train_skill("upper", assets["base"], tmp_path / "x", dataset=_dataset(["upper"]),
                    peft_config=LoraConfig(use_dora=True, target_modules=["q_proj"]))  # fmt: skip
    with pytest.raises(ValueError, match="Raise max_length"):
        train_skill("upper", assets["base"], tmp_path / "x", dataset=_dataset(["upper"]), max_length=10,
                    dtype=torch.float32)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# train_router


def test_train_router_trains_only_the_router_and_reloads_identically(assets, tmp_path):
    skill_hashes = {n: sha256_file(os.path.join(p, "adapter_model.safetensors")) for n, p in assets["skills"].items()}
    base_before = {k: v.clone() for k, v in load_base(assets["base"]).state_dict().items()}
    seen = {}

    from transformers import TrainerCallback

    class Snapshot(TrainerCallback):  # the model the Trainer actually trained, after training
        def on_train_end(self, args, state, control, model=None, **kwargs):
            seen["model"] = model

    path = train_router("toy", assets["skills"], assets["base"], tmp_path / "router",
                        dataset=_dataset(["upper", "reverse"], 16, 4), dtype=torch.float32,
                        training_args={**FAST, "max_steps": 3}, callbacks=[Snapshot()], task_rank=0)  # fmt: skip
    model = seen["model"]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("skill_router_gate" in n for n in trainable)
    assert any(
        p.abs().sum() > 0 for n, p in model.named_parameters() if n.endswith("proj.weight") and "skill_router_" in n
    )
    base_after = model.get_base_model().state_dict()
    for key, value in base_before.items():  # base weights unchanged, bit for bit (skill factors are buffers)
        after = base_after.get(key, base_after.get(key.replace(".weight", ".base_layer.weight")))
        assert torch.equal(after, value), key
    assert skill_hashes == {
        n: sha256_file(os.path.join(p, "adapter_model.safetensors")) for n, p in assets["skills"].items()
    }

    saved = json.loads(open(os.path.join(path, "adapter_config.json")).read())
    assert saved["peft_type"] == "SKILL_ROUTER" and set(saved["skill_lock"]) == {"upper", "reverse"}
    # the router alone shares one gate between all modules by default (docs/DEFAULTS.md)
    assert saved["gate_scope"] == "model"
    gates = {id(m.skill_router_gate["default"]) for m in model.modules() if hasattr(m, "skill_router_gate")}
    assert len(gates) == 1
    batch = DataCollatorForCompletion(_tokenizer())(_records("upper", 2) + _records("reverse", 2))
    model.eval()
    reloaded = AutoPeftModelForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reloaded(**batch).logits)


def test_train_hybrid_gives_the_task_lora_its_own_rate_and_resumes(assets, tmp_path):
    """The hybrid's task LoRA trains at task_learning_rate, the router at the Trainer's rate; both move, both save."""
    seen = {}

    from transformers import TrainerCallback

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, optimizer=None, model=None, **kwargs):
            seen["rates"] = sorted(group["lr"] for group in optimizer.param_groups)
            seen["model"] = model

    args = {**FAST, "max_steps": 3, "learning_rate": 5e-3, "lr_scheduler_type": "constant", "warmup_steps": 0}
    path = train_router("toy", assets["skills"], assets["base"], tmp_path / "hybrid", task_rank=2,
                        task_learning_rate=1e-3, dataset=_dataset(["upper", "reverse"], 16, 4), dtype=torch.float32,
                        training_args=args, callbacks=[Snapshot()])  # fmt: skip
    assert seen["rates"] == [1e-3, 5e-3]
    model = seen["model"]
    task_B = [p for n, p in model.named_parameters() if "skill_router_task_B" in n]
    assert task_B and all(p.abs().sum() > 0 for p in task_B)  # moved off its zero init
    results = json.loads(open(os.path.join(path, "train_results.json")).read())
    assert results["task_rank"] == 2 and results["task_learning_rate"] == 1e-3
    assert json.loads(open(os.path.join(path, "adapter_config.json")).read())["gate_scope"] == "module"
    batch = DataCollatorForCompletion(_tokenizer())(_records("upper", 2))
    reloaded = AutoPeftModelForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        assert torch.equal(model.eval()(**batch).logits, reloaded(**batch).logits)


@pytest.mark.parametrize(
    ("router", "task_rank", "overrides", "rates"),
    [
        ("static", 0, {}, [0.1]),  # the kind's own rate: a bare logit at 5e-3 stays near uniform
        ("static", 0, {"learning_rate": 5e-3}, [5e-3]),  # the caller's rate wins
        ("static", 2, {}, [5e-3, 0.1]),  # hybrid: the task LoRA at task_learning_rate, the logits at theirs
        ("sequence", 0, {}, [5e-3]),  # ROUTER_TRAINING_DEFAULTS
    ],
)
def test_train_router_uses_the_router_kinds_rate_unless_told(assets, tmp_path, router, task_rank, overrides, rates):
    seen = {}

    from transformers import TrainerCallback

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, optimizer=None, model=None, **kwargs):
            seen["rates"] = sorted({group["lr"] for group in optimizer.param_groups})

    args = {**FAST, "max_steps": 1, "lr_scheduler_type": "constant", "warmup_steps": 0, **overrides}
    train_router("toy", assets["skills"], assets["base"], tmp_path / "r", router=router, task_rank=task_rank,
                 skill_prior_records=0, dataset=_dataset(["upper", "reverse"]), dtype=torch.float32,
                 training_args=args, callbacks=[Snapshot()])  # fmt: skip
    assert seen["rates"] == rates


def _starting_gate_biases(seen: dict):
    from transformers import TrainerCallback

    class Start(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen["biases"] = [p.detach().clone() for n, p in model.named_parameters()
                              if "skill_router_gate" in n and n.endswith("proj.bias")]  # fmt: skip

    return Start()


@pytest.mark.parametrize("fits", [True, False, "t", None])
def test_train_router_starts_from_the_skill_prior(assets, tmp_path, fits):
    """skill_prior_records (default 64): each skill's loss on the first records, the uniform mix's and the best
    skill's paired t, recorded in train_results.json. Where the best skill beats the mix by the margin and the t, the
    Trainer starts from exactly the prior's gates; where it does not, from the uniform start (zero biases).
    `fits="t"`: any gain, but a t no gain reaches; `fits=None`: the default rule decides."""
    from samdkif_peft.training.train_router import (
        DEFAULT_SKILL_PRIOR_RECORDS,
        SKILL_PRIOR_MIN_GAIN,
        SKILL_PRIOR_MIN_T,
    )

    assert DEFAULT_SKILL_PRIOR_RECORDS > 0  # on by default
    inf, seen = float("inf"), {}
    min_gain, min_t = {True: (-inf, -inf), False: (inf, inf), "t": (-inf, inf), None: (None, None)}[fits]
    path = train_router("toy", assets["skills"], assets["base"], tmp_path / "prior", task_rank=0,
                        dataset=_dataset(["upper"], 16, 4), dtype=torch.float32, skill_prior_records=8,
                        skill_prior_min_gain=min_gain, skill_prior_min_t=min_t,
                        training_args={**FAST, "max_steps": 1}, callbacks=[_starting_gate_biases(seen)])  # fmt: skip
    prior = json.loads(open(os.path.join(path, "train_results.json")).read())["skill_prior"]
    assert prior["records"] == 8 and set(prior["losses"]) == set(assets["skills"])
    assert prior["uniform_loss"] > 0 and prior["losses"]["upper"] != prior["losses"]["reverse"]
    assert prior["best"] == min(prior["losses"], key=prior["losses"].get) and abs(prior["paired_t"]) < inf
    assert seen["biases"]
    if fits is None:  # the default: the prior only where the best skill is 7 % below the uniform mix, record by record
        fits = (min(prior["losses"].values()) < prior["uniform_loss"] * (1 - SKILL_PRIOR_MIN_GAIN)
                and prior["paired_t"] >= SKILL_PRIOR_MIN_T)  # fmt: skip
        assert (prior["weights"] is not None) == fits
    if fits in (False, "t"):
        assert prior["weights"] is None and all(torch.equal(b, torch.zeros_like(b)) for b in seen["biases"])
        return
    weights = prior["weights"]
    assert set(weights) == set(assets["skills"]) and abs(sum(weights.values()) - 1) < 1e-6
    assert (weights["upper"] > weights["reverse"]) == (prior["losses"]["upper"] < prior["losses"]["reverse"])
    order = json.loads(open(os.path.join(path, "adapter_config.json")).read())["skills"]  # the router's skill order
    expected = torch.tensor([weights[name] for name in order]).log()
    assert all(torch.allclose(b, expected, atol=1e-5) for b in seen["biases"])


def test_mixture_losses_per_record_equal_each_record_alone(assets, tok):
    """The per-record losses the prior's paired t reads come from the batched passes, and equal each record's own
    loss scored alone (the model's shift and answer mask, padding ignored); their batch means give the mean loss."""
    from samdkif_peft.training.train_router import mixture_losses

    config = SkillRouterConfig(skills=assets["skills"], task_type="CAUSAL_LM")
    model = get_peft_model(load_base(assets["base"]), config).eval()
    train, _ = prepare_splits(_dataset(["upper", "reverse"], 12, 4), tok, None)
    mixtures = [{"upper": 1.0}, {"upper": 0.5, "reverse": 0.5}]
    means, per_record = mixture_losses(model, tok, train, 10, None, mixtures)
    collator = DataCollatorForCompletion(tok)
    for weights, mean, rows in zip(mixtures, means, per_record):
        with torch.no_grad(), model.base_model.force_skill_weights(weights):
            alone = [float(model(**collator([train[i]])).loss) for i in range(10)]
        assert rows == pytest.approx(alone, rel=1e-5)
        batches = [collator([train[i] for i in range(j, min(j + 8, 10))]) for j in (0, 8)]
        with torch.no_grad(), model.base_model.force_skill_weights(weights):
            assert mean == pytest.approx(sum(float(model(**b).loss) for b in batches) / 2, rel=1e-6)
    assert per_record[0] != per_record[1]


def test_skill_fits_needs_the_gain_and_a_paired_t():
    """A mean gain carried by one record (low paired t) keeps the uniform start; a steady one takes the prior."""
    from samdkif_peft.training.train_router import paired_t, skill_fits

    assert paired_t([1.0, 2.0, 3.0], [2.0, 4.0, 4.0]) == pytest.approx(4.0)  # differences 1, 2, 1
    assert paired_t([1.0, 1.0], [2.0, 2.0]) == float("inf") and paired_t([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert paired_t([1.0], [3.0]) == 0.0 and paired_t([], []) == 0.0  # one record is no evidence
    uniform = [1.0] * 15 + [5.0]  # mean 1.25
    steady, one_record = [0.8] * 15 + [4.0], [1.0] * 16  # both mean 1.0: 20 % below the mix
    assert paired_t(steady, uniform) == pytest.approx(5.0) and paired_t(one_record, uniform) == pytest.approx(1.0)
    assert skill_fits(1.0, 1.25, paired_t(steady, uniform))
    assert not skill_fits(1.0, 1.25, paired_t(one_record, uniform))
    assert not skill_fits(0.95, 1.0, float("inf"))  # 5 %: below the gain, however steady
    assert skill_fits(0.95, 1.0, 0.0, min_gain=float("-inf"), min_t=float("-inf"))  # the "always" switch


def test_resumed_router_reports_the_prior_it_started_from(assets, tmp_path):
    """The prior is scored once, before training, and kept beside the checkpoints: a run resumed from a checkpoint
    records the same `skill_prior` (not null) and ends with exactly the uninterrupted run's router."""

    def run(**kwargs):
        args = {**FAST, "max_steps": 4, "save_strategy": "steps", "save_steps": 2, "eval_strategy": "no"}
        return train_router("toy", assets["skills"], assets["base"], tmp_path / "router", task_rank=0,
                            dataset=_dataset(["upper"], 16, 4), dtype=torch.float32, skill_prior_records=8,
                            skill_prior_min_gain=float("-inf"), skill_prior_min_t=float("-inf"), training_args=args,
                            **kwargs)  # fmt: skip

    path = run()
    full = json.loads(open(os.path.join(path, "train_results.json")).read())
    weights = load_file(os.path.join(path, "adapter_model.safetensors"))
    assert full["skill_prior"]["weights"] is not None
    shutil.rmtree(tmp_path / "router" / "checkpoints" / "checkpoint-4")
    run(resume_from_checkpoint=True)
    resumed = json.loads(open(os.path.join(path, "train_results.json")).read())
    assert resumed["resumed_from_checkpoint"].endswith("checkpoint-2") and resumed["global_step"] == 4
    assert resumed["skill_prior"] == full["skill_prior"]
    again = load_file(os.path.join(path, "adapter_model.safetensors"))
    assert weights.keys() == again.keys() and all(torch.equal(weights[k], again[k]) for k in weights)


def test_skill_prior_off_keeps_the_uniform_start(assets, tmp_path):
    """skill_prior_records=0: the paper's uniform start, nothing scored, nothing recorded."""
    seen = {}
    path = train_router("toy", assets["skills"], assets["base"], tmp_path / "uniform", task_rank=0,
                        dataset=_dataset(["upper"], 16, 4), dtype=torch.float32, skill_prior_records=0,
                        training_args={**FAST, "max_steps": 1}, callbacks=[_starting_gate_biases(seen)])  # fmt: skip
    assert json.loads(open(os.path.join(path, "train_results.json")).read())["skill_prior"] is None
    assert seen["biases"] and all(torch.equal(b, torch.zeros_like(b)) for b in seen["biases"])


def test_train_router_bad_input(assets, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Skill 'ghost': adapter folder .* does not exist. Train it first"):
        train_router("toy", {**assets["skills"], "ghost": str(tmp_path / "ghost")}, assets["base"], tmp_path / "r",
                     dataset=_dataset(["upper"]))  # fmt: skip
    with pytest.raises(ValueError, match="Unknown task 'nope'; valid names: icd10cm_chapter_classification"):
        train_router("nope", assets["skills"], assets["base"], tmp_path / "r")
    with pytest.raises(ValueError, match="non-empty dict"):
        train_router("toy", {}, assets["base"], tmp_path / "r", dataset=_dataset(["upper"]))


# ----------------------------------------------------------------------------------------------------------------
# CLI


def _write_built(root, kind: str, name: str, data: DatasetDict) -> None:
    """Lay records out the way `samdkif data build` does, so `load_skill`/`load_task` find them."""
    folder = root / kind / name
    folder.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        data[split if split in data else "validation"].to_parquet(str(folder / f"{split}.parquet"))


def test_cli_train_skill_and_router(assets, tmp_path, capsys):
    data = tmp_path / "datasets"
    _write_built(data, "skills", "nli", _dataset(["upper"]))
    _write_built(data, "tasks", "ddi_severity", _dataset(["upper", "reverse"]))
    common = ["--base-model", assets["base"], "--data-dir", str(data), "--max-steps", "2", "--batch-size", "4"]

    skill_out = tmp_path / "skill-nli"
    assert samdkif_main(["train", "skill", "nli", "--out", str(skill_out), "--peft-type", "lora", *common]) == 0
    assert capsys.readouterr().out.strip().endswith(str(skill_out))
    assert os.path.isdir(skill_out / "checkpoints" / "checkpoint-2")  # bf16 by default, checkpoints on
    assert (
        samdkif_main(["train", "skill", "nli", "--out", str(skill_out), "--peft-type", "lora", "--resume", *common])
        == 0
    )
    assert json.loads((skill_out / "train_results.json").read_text())["resumed_from_checkpoint"].endswith("-2")

    router_out = tmp_path / "router"
    skills = [f"nli={skill_out}", f"reverse={assets['skills']['reverse']}"]
    argv = ["train", "router", "ddi_severity", "--skills", *skills, "--router", "token", "--out", str(router_out)]
    assert samdkif_main([*argv, *common, "--dtype", "float32"]) == 0
    router_config = json.loads((router_out / "adapter_config.json").read_text())
    assert router_config["router"] == "token" and router_config["task_rank"] == 8  # the hybrid by default
    hybrid_out = tmp_path / "hybrid"
    hybrid = ["train", "router", "ddi_severity", "--skills", *skills, "--task-rank", "2", "--out", str(hybrid_out)]
    assert samdkif_main([*hybrid, *common, "--dtype", "float32", "--task-learning-rate", "2e-3"]) == 0
    assert json.loads((hybrid_out / "adapter_config.json").read_text())["task_rank"] == 2
    assert json.loads((hybrid_out / "train_results.json").read_text())["task_learning_rate"] == 2e-3

    assert samdkif_main(["train", "skill", "nope", "--out", str(tmp_path / "x"), *common]) == 1
    assert "samdkif train skill: error: Unknown skill 'nope'" in capsys.readouterr().err
    missing = ["train", "router", "ddi_severity", "--skills", f"ghost={tmp_path / 'ghost'}", "--out", str(router_out)]
    assert samdkif_main([*missing, *common]) == 1
    assert "Skill 'ghost': adapter folder" in capsys.readouterr().err
    assert samdkif_main(["train", "router", "ddi_severity", "--skills", "nli", "--out", str(router_out), *common]) == 1
    assert "NAME=PATH" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            samdkif_main(["train", "skill", "nli", "--out", str(tmp_path / "y"), "--max-length", "12", *common]) == 1
        )
    assert "Raise max_length" in capsys.readouterr().err


def test_balance_by_output_equalises_labels_at_the_same_size():
    from collections import Counter

    from samdkif_peft.training.common import balance_by_output

    outputs = ["high"] * 14 + ["low"] * 5 + ["mid"] * 1
    train = Dataset.from_list([{"query": f"q{i}", "output": o} for i, o in enumerate(outputs)])
    balanced = balance_by_output(train, seed=0)
    assert len(balanced) == 20
    assert Counter(balanced["output"]) == {"high": 7, "low": 7, "mid": 6}
    assert len(set(balanced.filter(lambda r: r["output"] == "high")["query"])) == 7  # drawn without replacement
    assert balance_by_output(train, seed=0)["query"] == balanced["query"]  # seeded
    many = Dataset.from_list([{"query": "q", "output": str(i)} for i in range(60)])
    with pytest.raises(ValueError, match="60 distinct values.*not a label space"):
        balance_by_output(many)


def test_train_skill_balance_labels_trains_on_balanced_records(assets, tmp_path):
    data = _dataset(["upper"], n_train=12)
    skewed = Dataset.from_list([{**r, "output": "YES" if i < 10 else "NO"} for i, r in enumerate(data["train"])])
    path = train_skill("yesno", assets["base"], tmp_path / "skill", dataset=DatasetDict({"train": skewed}),
                       dtype=torch.float32, training_args={**FAST, "max_steps": 1}, balance_labels=True)  # fmt: skip
    results = json.loads(open(os.path.join(path, "train_results.json")).read())
    assert results["train_samples"] == 12
    with pytest.raises(ValueError, match="not a label space"):
        free_text = Dataset.from_list([{"query": f"q{i}", "output": f"answer {i}"} for i in range(60)])
        train_skill("free", assets["base"], tmp_path / "x", dataset=free_text, dtype=torch.float32,
                    training_args=FAST, balance_labels=True)  # fmt: skip

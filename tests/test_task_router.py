"""`samdkif router train` / `train_task_router`: a user's own task end to end on a tiny Llama with tiny skills.

Three tasks written here (not one of the nine): a label task, a multiple-choice task and a generation task, each
through the CLI; the report's numbers are recomputed from `predictions.jsonl`; every bad input gets its one-line
message before a model loads; a stopped run resumes without redoing finished stages.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

import samdkif_peft  # noqa: F401  (registers SKILL_ROUTER)
from samdkif_peft.cli import main as samdkif_main
from samdkif_peft.task_router import TaskDataError, detect_kind, read_split, train_task_router

from .conftest import make_lora_skill, save_char_base


WORDS = (
    "heart lung renal fever drug liver bone skin gene cell brain blood nerve vein joint gland colon spine tooth ear "
    "eye lip hip rib toe arm"
).split()
LABELS = {0: "low", 1: "medium", 2: "high"}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("own-task")
    base = save_char_base(root / "base")
    skills = root / "skills"
    for i, name in enumerate(("upper", "reverse")):
        make_lora_skill(base, str(skills / f"skill-{name}"), seed=10 + i)
    return {"root": root, "base": base, "skills": str(skills)}


def _write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _label_rows(words):
    return [{"context": f"finding: {w}", "query": "risk level?", "output": LABELS[WORDS.index(w) % 3]} for w in words]


def _choice_rows(words, seed):
    rng = random.Random(seed)
    rows = []
    for w in words:
        options = rng.sample(WORDS, 3)
        if w not in options:
            options[rng.randrange(3)] = w
        letter = "ABC"[options.index(w)]
        context = "\n".join(f"({x}) {o}" for x, o in zip("ABC", options))
        rows.append({"context": context, "query": f"which one is {w.upper()}?", "output": f"({letter}) {w}"})
    return rows


def _generation_rows(words):
    return [{"context": "", "query": f"reverse {w}", "output": w[::-1]} for w in words]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    train_words, test_words = WORDS[:18], WORDS[18:]
    out = {}
    for kind, make in (("label", _label_rows), ("choice", lambda w: _choice_rows(w, len(w))),
                       ("generation", _generation_rows)):  # fmt: skip
        out[kind] = (_write_jsonl(root / f"{kind}_train.jsonl", make(train_words)),
                     _write_jsonl(root / f"{kind}_test.jsonl", make(test_words)))  # fmt: skip
    return out


def _cli(assets, train, test, out, *extra):
    argv = ["router", "train", "--train", train, "--test", test, "--out", str(out), "--skills", assets["skills"],
            "--base-model", assets["base"], "--max-steps", "2", "--quiet", *extra]  # fmt: skip
    return samdkif_main(argv)


def _predictions(out):
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def _accuracy(predictions, references):
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def test_label_task_end_to_end_with_task_lora_baseline(assets, files, tmp_path, capsys):
    from peft import PeftModel

    out = tmp_path / "label-task"
    assert _cli(assets, *files["label"], out, "--baseline", "task-lora") == 0
    printed = capsys.readouterr().out
    assert "| router |" in printed and "| task LoRA |" in printed and "| majority label" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "label" and report["n_test"] == 8 and set(report["labels"]) == set(LABELS.values())
    assert set(report["metrics"]) == {"base", "router", "task_lora"}
    rows = _predictions(out)
    assert len(rows) == 8 and all(set(r["option_scores"]) == set(LABELS.values()) for r in rows)
    assert all(max(r["option_scores"], key=r["option_scores"].get) == r["prediction"] for r in rows)
    references = [r["reference"] for r in rows]
    # the report's numbers are the predictions' numbers
    assert report["metrics"]["router"]["accuracy"] == pytest.approx(_accuracy([r["prediction"] for r in rows],
                                                                              references))  # fmt: skip
    for variant in ("base", "task_lora"):
        got = [r[f"{variant}_prediction"] for r in rows]
        assert report["metrics"][variant]["accuracy"] == pytest.approx(_accuracy(got, references))
    # the calibrated reading is batch calibration of the very option scores in predictions.jsonl
    import numpy as np

    from samdkif_peft.evaluation.likelihood import _fast_scores, batch_calibrate

    options = [list(r["option_scores"]) for r in rows]
    picks = [o[j] for o, j in zip(options, batch_calibrate([list(r["option_scores"].values()) for r in rows]))]
    expected = _fast_scores(np.array(picks, dtype=object), np.array(references, dtype=object))["macro_f1"]
    assert set(report["batch_calibrated"]) == {"base", "router", "task_lora"}
    assert report["batch_calibrated"]["router"]["macro_f1"] == pytest.approx(expected)
    assert "Batch-calibrated macro-F1" in (out / "report.md").read_text()
    counts = report["prediction_counts"]["router"]
    assert sum(counts.values()) == 8
    assert sum(sum(row.values()) for row in report["confusion"]["router"].values()) == 8
    lo, hi = report["intervals"]["router"]["accuracy"]
    assert lo <= report["metrics"]["router"]["accuracy"] <= hi
    train_labels = [json.loads(line)["output"] for line in open(files["label"][0])]
    counts = Counter(train_labels)
    assert counts[report["baselines"]["majority"]["label"]] == max(counts.values())
    # no test word is in a training context ("finding" is in all of them): the nearest-records vote falls back to
    # the majority label on every record
    nearest = report["baselines"]["nearest"]
    assert (nearest["neighbours"], nearest["unmatched"]) == (8, 8)
    assert nearest["accuracy"] == pytest.approx(report["baselines"]["majority"]["accuracy"])
    # the router is an ordinary peft adapter folder with a card that carries the results
    assert (out / "routing.png").stat().st_size > 1000
    assert "## Results on the task" in (out / "README.md").read_text()
    routing = report["routing"]
    assert routing["skills"] == ["reverse", "upper"] and len(routing["weights"]) == 2
    assert all(abs(sum(row) - 1) < 1e-3 for row in routing["weights"])
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(assets["base"]), str(out))
    assert json.loads((out / "adapter_config.json").read_text())["task_rank"] == 8  # hybrid by default
    assert model.peft_config["default"].router == "sequence"


def test_multiple_choice_and_generation_tasks(assets, files, tmp_path):
    out = tmp_path / "choice"
    assert _cli(assets, *files["choice"], out, "--router", "static") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "multiple_choice" and report["labels"] == ["A", "B", "C"]
    rows = _predictions(out)
    assert all(r["reference"] in "ABC" and r["prediction"] in "ABC" and len(r["option_scores"]) == 3 for r in rows)
    assert report["metrics"]["router"]["accuracy"] == pytest.approx(
        _accuracy([r["prediction"] for r in rows], [r["reference"] for r in rows])
    )
    assert json.loads((out / "adapter_config.json").read_text())["task_rank"] == 0
    assert "nearest" not in report["baselines"]  # options are shuffled per record: no answer to copy

    out = tmp_path / "generation"
    assert _cli(assets, *files["generation"], out, "--router", "token") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "generation" and set(report["metrics"]["router"]) == {"rouge_l", "exact_match",
                                                                                   "token_f1"}  # fmt: skip
    from samdkif_peft.evaluation.scoring import score_task
    from samdkif_peft.task_router import task_spec

    rows = _predictions(out)
    spec = task_spec("generation", "generation", read_split(files["generation"][0], "train"))
    direct = score_task(spec, [r["prediction"] for r in rows], [r["reference"] for r in rows])
    for key, value in direct.items():  # the mean of per-record scores equals the corpus score for these metrics
        assert report["metrics"]["router"][key] == pytest.approx(value)
    nearest = report["baselines"]["nearest"]  # no contexts: the most frequent training answer everywhere
    assert (nearest["neighbours"], nearest["unmatched"]) == (1, len(rows)) and set(nearest["intervals"]) == set(direct)


def test_kind_detection_and_override(files):
    kinds = {k: detect_kind(read_split(tr, "train"), read_split(te, "test")) for k, (tr, te) in files.items()}
    assert kinds == {"label": "label", "choice": "multiple_choice", "generation": "generation"}


def test_resume_skips_finished_stages(assets, files, tmp_path, monkeypatch):
    import samdkif_peft.task_router.run as run

    out = tmp_path / "resume"

    def stop(*args, **kwargs):
        raise KeyboardInterrupt  # the user pressed Ctrl-C during router training

    import importlib

    monkeypatch.setattr(importlib.import_module("samdkif_peft.training.train_router"), "train_router", stop)
    with pytest.raises(KeyboardInterrupt):
        train_task_router(*files["label"], out, skills=[assets["skills"]], base_model=assets["base"], max_steps=2,
                          progress=False)  # fmt: skip
    base_eval = out / "eval" / "base.json"
    stamp = base_eval.stat().st_mtime_ns
    monkeypatch.undo()
    result = train_task_router(*files["label"], out, skills=[assets["skills"]], base_model=assets["base"],
                               max_steps=2, progress=False)  # fmt: skip
    assert base_eval.stat().st_mtime_ns == stamp  # the base model was not scored again
    trained = (out / "train_results.json").stat().st_mtime_ns
    again = train_task_router(*files["label"], out, skills=[assets["skills"]], base_model=assets["base"],
                              max_steps=2, progress=False)  # fmt: skip
    assert (out / "train_results.json").stat().st_mtime_ns == trained  # nothing retrained
    assert again.metrics == result.metrics
    # another task into the same folder is refused instead of mixing two runs
    with pytest.raises(TaskDataError, match="holds a run with other data_sha256"):
        train_task_router(*files["generation"], out, skills=[assets["skills"]], base_model=assets["base"])
    with pytest.raises(TaskDataError, match="holds a run with other balance_labels"):  # a different training recipe
        train_task_router(*files["label"], out, skills=[assets["skills"]], base_model=assets["base"],
                          balance_labels=True)  # fmt: skip
    for budget in ({"max_steps": 3}, {"epochs": 2.0}, {"max_steps": 2, "seed": 7}):  # a finished stage has other steps
        with pytest.raises(TaskDataError, match="holds a run with other training"):
            train_task_router(*files["label"], out, skills=[assets["skills"]], base_model=assets["base"], **budget)
    assert run.TASK_FILE == "task.json"


def _bad(tmp_path, rows, name="train.jsonl"):
    path = tmp_path / name
    path.write_text(rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_bad_inputs_get_one_line_errors_before_any_model_loads(assets, files, tmp_path, capsys, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded for bad input")

    monkeypatch.setattr("samdkif_peft.base_model.load_base_model", no_model)
    good_train, good_test = files["label"]
    rows = _label_rows(WORDS[:18])
    cases = [
        (_bad(tmp_path, [{"context": "x", "question": "q", "output": "low"}] * 9, "cols.jsonl"), good_test,
         "missing column(s) query (has: context, output, question)"),
        (_bad(tmp_path, rows[:3] + [{**rows[3], "output": " "}] + rows[4:], "empty.jsonl"), good_test,
         "empty.jsonl: line 4 has an empty output"),
        (_bad(tmp_path, "\n".join(json.dumps(r) for r in rows[:5]) + "\n{not json\n", "broken.jsonl"), good_test,
         "broken.jsonl: line 6 is not valid JSON"),
        (_bad(tmp_path, rows[:5], "short.jsonl"), good_test, "short.jsonl: 5 training rows; at least 8"),
        (good_train, _bad(tmp_path, _label_rows(WORDS[16:20]), "leak.jsonl"),
         "leak.jsonl: row 1 has the same context and query as"),
        (str(tmp_path / "nope.jsonl"), good_test, "nope.jsonl: no such file"),
        (_bad(tmp_path, "a,b\n", "data.txt"), good_test, "unknown file type '.txt'"),
    ]  # fmt: skip
    for train, test, message in cases:
        assert _cli(assets, train, test, tmp_path / "out") == 1, message
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert _cli(assets, *files["generation"], tmp_path / "gen", "--balance-labels") == 1
    err = capsys.readouterr().err
    assert "generation task (free-text outputs), so there are no labels to balance" in err and err.count("\n") == 1
    # --columns maps other names; a CSV works the same
    csv = tmp_path / "mapped.csv"
    csv.write_text("note,question,label\n" + "".join(f"{r['context']},{r['query']},{r['output']}\n" for r in rows))
    data = read_split(str(csv), "train", "context=note,query=question,output=label")
    assert data.column_names == ["context", "query", "output"] and data[0]["output"] == rows[0]["output"]
    with pytest.raises(TaskDataError, match="--columns: 'context' is not NAME=COLUMN"):
        read_split(str(csv), "train", "context")


def test_push_to_hub_refuses_local_skills(assets, files, tmp_path, capsys):
    assert _cli(assets, *files["label"], tmp_path / "push", "--push-to-hub", "me/router") == 1
    err = capsys.readouterr().err
    assert "are local folders" in err and "--bundle-skills" in err
    assert not (tmp_path / "push" / "eval").exists()  # refused before anything ran


def test_dtype_of_task_files_survives_numbers(tmp_path):
    rows = [{"context": i, "query": "q", "output": i % 2} for i in range(10)]
    data = read_split(_bad(tmp_path, rows, "numbers.jsonl"), "train")
    assert data[3] == {"context": "3", "query": "q", "output": "1"}


def test_push_to_hub_with_bundled_skills_loads_by_repo_id(assets, files, tmp_path, hub_repo_id):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = train_task_router(*files["label"], tmp_path / "pushed", skills=[assets["skills"]],
                               base_model=assets["base"], max_steps=2, bundle_skills=True, retrieve=1,
                               push_to_hub=hub_repo_id, progress=False)  # fmt: skip
    from huggingface_hub import HfApi

    from samdkif_peft.task_router import RetrievalMemory

    files_on_hub = set(HfApi().list_repo_files(hub_repo_id))
    expected = {"adapter_config.json", "adapter_model.safetensors", "README.md", "report.md", "routing.png",
                "retrieval_memory.jsonl", "retrieval_config.json"}  # fmt: skip
    assert RetrievalMemory.from_pretrained(hub_repo_id) == RetrievalMemory.from_pretrained(tmp_path / "pushed")
    assert expected <= files_on_hub
    assert not any(f.startswith(("checkpoints/", "eval/", "baselines/")) for f in files_on_hub)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(assets["base"]), hub_repo_id)
    assert model.peft_config["default"].skill_names == ["reverse", "upper"]
    assert result.metrics["router"]


def test_balance_labels_reaches_router_training(assets, files, tmp_path, monkeypatch):
    import importlib

    seen = {}

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("samdkif_peft.training.train_router"), "train_router", record)
    with pytest.raises(KeyboardInterrupt):
        train_task_router(*files["label"], tmp_path / "balanced", skills=[assets["skills"]], base_model=assets["base"],
                          max_steps=2, balance_labels=True, progress=False)  # fmt: skip
    assert seen["balance_labels"] is True and seen["max_length"] == 384  # the default training length
    assert json.loads((tmp_path / "balanced" / "task.json").read_text())["balance_labels"] is True


def test_retrieve_puts_training_answers_into_every_prompt_and_is_part_of_the_run(assets, tmp_path):
    drugs = "warfarin aspirin digoxin amiodarone fluconazole ibuprofen heparin statin".split()
    pairs = [(a, b) for i, a in enumerate(drugs) for b in drugs[i + 1 :]]
    rows = [{"context": f"Drug A: {a}\nDrug B: {b}", "query": "How severe?", "output": LABELS[(len(a) + len(b)) % 3]}
            for a, b in pairs]  # fmt: skip
    train, test = _write_jsonl(tmp_path / "train.jsonl", rows[:20]), _write_jsonl(tmp_path / "test.jsonl", rows[20:])
    out = tmp_path / "retrieved"
    assert _cli(assets, train, test, out, "--retrieve", "2") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["retrieve"] == 2 and "most similar training records" in (out / "report.md").read_text()
    assert report["retrieved_examples"] == {"min": 2, "mean": 2.0, "fewer_than_asked": 0}
    # the no-model baseline: the vote of the same 2 nearest training records, read from the records' own contexts
    from samdkif_peft.task_router.retrieval import nearest_answers

    votes = nearest_answers(rows[20:], rows[:20], 2)
    nearest = report["baselines"]["nearest"]
    assert nearest["neighbours"] == 2 and nearest["unmatched"] == votes.count(None) < len(votes)
    expected = _accuracy(
        [v or report["baselines"]["majority"]["label"] for v in votes], [r["output"] for r in rows[20:]]
    )
    assert nearest["accuracy"] == pytest.approx(expected)
    assert (
        "| no model: vote of the 2 most similar training records' answers (BM25) |" in (out / "report.md").read_text()
    )
    for row, original in zip(_predictions(out), rows[20:]):  # the test prompts every model was scored on
        assert row["context"].startswith("Similar records from the training data")
        assert row["context"].endswith("This record:\n" + original["context"]) and row["context"].count("\n- ") == 2
    assert json.loads((out / "task.json").read_text())["retrieve"] == 2
    # the memory saved beside the router rebuilds the scored prompts exactly, for new records at inference
    from transformers import AutoTokenizer

    from samdkif_peft.task_router import RetrievalMemory
    from samdkif_peft.task_router.retrieval import answer_room

    tokenizer = AutoTokenizer.from_pretrained(assets["base"])
    memory = RetrievalMemory.from_pretrained(out)
    assert (memory.neighbours, memory.max_length, len(memory.records)) == (2, 384, 20)
    assert memory.answer_tokens == answer_room(tokenizer, [r["output"] for r in rows[:20]]) > 0
    new_records = [{"context": r["context"], "query": r["query"]} for r in rows[20:]]  # no answers at inference
    rebuilt = memory.add_examples(new_records, tokenizer)
    assert [r["context"] for r in rebuilt] == [row["context"] for row in _predictions(out)]
    with pytest.raises(TaskDataError, match="holds a run with other retrieve"):
        train_task_router(train, test, out, skills=[assets["skills"]], base_model=assets["base"], max_steps=2)
    with pytest.raises(TaskDataError, match="--retrieve -1"):
        train_task_router(train, test, tmp_path / "negative", retrieve=-1)
    with pytest.raises(TaskDataError, match="--eval-limit 0"):
        train_task_router(train, test, tmp_path / "negative", eval_limit=0)
    with pytest.raises(TaskDataError, match="--max-length 4"):
        train_task_router(train, test, tmp_path / "negative", max_length=4)
    with pytest.raises(TaskDataError, match=r"holds a run with other max_length \(task.json\)"):
        train_task_router(train, test, out, skills=[assets["skills"]], base_model=assets["base"], max_length=512,
                          retrieve=2, max_steps=2)  # fmt: skip

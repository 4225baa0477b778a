"""`task_router.retrieval`: leak-free BM25 neighbours with their answers in the context (`retrieve=N`)."""

import pytest

from samdkif_peft.data.templates import format_prompt
from samdkif_peft.task_router.retrieval import (
    BM25,
    RetrievalMemory,
    add_retrieved_examples,
    answer_room,
    count_examples,
    fits_within,
    nearest_answers,
    with_examples,
)


CONTEXTS = ["Drug A: warfarin\nDrug B: aspirin", "Drug A: warfarin\nDrug B: fluconazole",
            "Drug A: digoxin\nDrug B: amiodarone", "Drug A: aspirin\nDrug B: ibuprofen"]  # fmt: skip
ANSWERS = ["not recommended", "contraindicated", "precaution for use", "take into account"]
TRAIN = [{"context": c, "query": "How severe?", "output": o} for c, o in zip(CONTEXTS, ANSWERS)]


def test_bm25_never_returns_the_excluded_record_and_ranks_shared_words_first():
    index = BM25(CONTEXTS)
    assert index.top(CONTEXTS[0], 3, exclude=0) == [1, 3]  # both share one drug; the unrelated pair scores 0
    assert index.top(CONTEXTS[0], 1)[0] == 0  # without exclusion a record is its own best match
    assert index.top("Drug A: metformin", 5) == []  # "drug" and "a" are in every record: nothing is similar
    assert index.top("warfarin warfarin fluconazole", 1) == [1]  # two shared drugs beat one


def test_training_records_never_see_themselves_and_test_records_see_training_answers():
    train = add_retrieved_examples(TRAIN, TRAIN, 2, leave_one_out=True)
    for original, row in zip(TRAIN, train):
        assert row["output"] == original["output"] and row["query"] == original["query"]
        own_line = "- " + original["context"].replace("\n", "; ") + " -> "
        assert own_line not in row["context"]
        assert row == original or row["context"].endswith("This record:\n" + original["context"])
    assert "- Drug A: warfarin; Drug B: fluconazole -> contraindicated" in train[0]["context"]
    assert train[2] == TRAIN[2]  # nothing similar: the record is left as it was
    test = add_retrieved_examples([{"context": "Drug A: fluconazole\nDrug B: ibuprofen", "query": "?", "output": "x"}],
                                  TRAIN, 1)  # fmt: skip
    assert test[0]["context"].startswith("Similar records from the training data, with their answers:\n- ")
    assert test[0]["context"].count("\n- ") == 1


def test_bad_arguments_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="retrieve at least one"):
        add_retrieved_examples(TRAIN, TRAIN, 0)
    with pytest.raises(ValueError, match="leave_one_out=True needs records to be the memory"):
        add_retrieved_examples(TRAIN[:2], TRAIN, 1, leave_one_out=True)


def test_multi_line_outputs_stay_on_the_example_line():
    row = with_examples(TRAIN[0], [{"context": "a\nb", "output": "DRUG: x\nDISEASE: y"}])
    assert "- a; b -> DRUG: x; DISEASE: y\n" in row["context"]


class _WordTokenizer:
    """One token per whitespace-separated word; `add_special_tokens` adds one BOS, as a real tokenizer may."""

    def __call__(self, text, add_special_tokens=True):
        if isinstance(text, list):
            return {"input_ids": [self(t, add_special_tokens)["input_ids"] for t in text]}
        return {"input_ids": [0] * (len(text.split()) + int(add_special_tokens))}


def test_examples_that_would_not_fit_are_dropped_least_similar_first():
    query = {"context": "Drug A: warfarin\nDrug B: aspirin", "query": "How severe?", "output": "x"}
    full = add_retrieved_examples([query], TRAIN, 3)[0]
    assert count_examples(full) == 3 and count_examples(query) == 0
    tokenizer = _WordTokenizer()
    length = len(format_prompt(full).split()) + 1 + 2 + 1  # BOS, room for a 2-token answer, EOS
    assert fits_within(tokenizer, length, 2)(full) and not fits_within(tokenizer, length - 1, 2)(full)
    words = [len(format_prompt(with_examples(query, TRAIN[:n])).split()) for n in range(4)]
    kept = add_retrieved_examples([query], TRAIN, 3, fits=fits_within(tokenizer, words[2] + 4, 2))[0]
    # the two most similar survive, in order (the pair itself, then the tie broken by index); the third is dropped
    assert count_examples(kept) == 2 and kept == with_examples(query, [TRAIN[0], TRAIN[1]])
    none_fit = add_retrieved_examples([query], TRAIN, 3, fits=lambda record: False)[0]
    assert none_fit == query  # too long even alone: the record is kept as it was, with no examples
    # the room is fixed, never the record's own answer: a long answer, or none (inference), keeps the same examples
    fits = fits_within(tokenizer, words[2] + 4, 2)
    for other in (
        {**query, "output": "a much longer answer than the room"},
        {k: query[k] for k in ("context", "query")},
    ):
        assert add_retrieved_examples([other], TRAIN, 3, fits=fits)[0]["context"] == kept["context"]
    assert answer_room(tokenizer, ["a b", "a b c", ""]) == 3


def test_memory_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a router trained with retrieve"):
        RetrievalMemory.from_pretrained(tmp_path)
    (tmp_path / "task.json").write_text('{"retrieve": 8}')
    with pytest.raises(FileNotFoundError, match=r"trained with retrieve=8 .*RetrievalMemory\(train_records, 8\)"):
        RetrievalMemory.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        RetrievalMemory.from_pretrained("./no/such/router")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        RetrievalMemory.from_pretrained("no/such router")  # neither a folder nor a valid repo id
    memory = RetrievalMemory(TRAIN, 2, max_length=64, answer_tokens=3)
    memory.save_pretrained(tmp_path / "saved")
    loaded = RetrievalMemory.from_pretrained(tmp_path / "saved")
    assert loaded == RetrievalMemory([{"context": r["context"], "output": r["output"]} for r in TRAIN], 2, 64, 3)
    lines = (tmp_path / "saved" / "retrieval_memory.jsonl").read_text().splitlines()
    (tmp_path / "saved" / "retrieval_memory.jsonl").write_text("\n".join(lines[:-1]))
    with pytest.raises(ValueError, match="holds 3 records, retrieval_config.json says 4"):
        RetrievalMemory.from_pretrained(tmp_path / "saved")


def test_nearest_answers_vote_with_ties_to_the_more_similar_record():
    pairs = [("warfarin aspirin", "major"), ("warfarin", "minor"), ("warfarin heparin", "minor"), ("digoxin", "mild")]
    memory = [{"context": c, "output": o} for c, o in pairs]
    query = [{"context": "warfarin aspirin"}, {"context": "metformin"}]
    assert nearest_answers(query, memory, 3) == ["minor", None]  # two of three say minor; nothing shares metformin
    assert nearest_answers(query, memory, 2) == ["major", None]  # a 1-1 tie goes to the more similar record
    assert nearest_answers(query, memory, 1) == ["major", None]


def test_training_warns_when_the_length_leaves_few_examples(caplog):
    from samdkif_peft.task_router.run import _warn_if_trimmed

    rows = add_retrieved_examples(TRAIN, TRAIN, 3, leave_one_out=True)  # 2, 1, 0 (digoxin pair), 1 examples
    with caplog.at_level("WARNING", logger="samdkif_peft.task_router.run"):
        assert _warn_if_trimmed(rows, 3, 384) == 1.0
    assert "keep 1.0 retrieved examples on average within --max-length 384" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="samdkif_peft.task_router.run"):
        _warn_if_trimmed(rows, 2, 384)  # half of 2 asked: enough
    assert not caplog.text

"""`task_router.retrieval`: leak-free BM25 neighbours with their answers in the context (`retrieve=N`)."""

import pytest

from samdkif_peft.task_router.retrieval import BM25, add_retrieved_examples, with_examples


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

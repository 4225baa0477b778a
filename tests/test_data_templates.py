"""Registries and the prompt template shared by training and evaluation."""

from __future__ import annotations

from samdkif_peft.data import SKILLS, TASKS, format_example, format_messages, format_prompt
from samdkif_peft.data.recipes import RECIPES
from samdkif_peft.data.splits import BUCKETS, bucket, split_of
from samdkif_peft.data.templates import pick_query


PAPER_SKILLS = (
    "question_answering",
    "multiple_choice_qa",
    "medical_conversation",
    "multilabel_doc_classification",
    "reading_comprehension",
    "nli",
    "summarization",
    "ner",
    "relation_extraction",
    "entity_attribute",
    "entity_synonymy",
    "entity_entity_relation",
)


def test_skill_names_are_the_papers():
    assert tuple(SKILLS) == PAPER_SKILLS


def test_every_skill_has_several_recipes_with_queries():
    for spec in SKILLS.values():
        assert len(spec.recipes) >= 2, spec.name
        for recipe in spec.recipes:
            assert recipe in RECIPES and RECIPES[recipe].queries


def test_tasks_six_seen_three_unseen_with_metrics():
    assert len(TASKS) == 9
    unseen = {t.name for t in TASKS.values() if t.unseen}
    assert unseen == {"elixhauser_comorbidity", "rare_disease_diagnosis", "ddi_severity"}
    skill_recipes = {r for s in SKILLS.values() for r in s.recipes}
    for task in TASKS.values():
        assert task.metric in {"accuracy", "micro_f1", "rouge_l", "exact_match"}
        if task.unseen:
            assert task.recipe not in skill_recipes, task.name  # unseen: no skill uses the formulation
        else:
            assert task.recipe in SKILLS[task.skill_type].recipes, task.name


def test_format_example_round_trip():
    record = {"context": "Term: Odd thing", "query": "Give the HPO term.", "output": "Retrognathia"}
    prompt, target = format_example(record)
    assert (
        prompt
        == format_prompt(record)
        == "### Input:\nTerm: Odd thing\n\n### Instruction:\nGive the HPO term.\n\n### Response:\n"
    )
    assert target == "Retrognathia"
    assert format_prompt({"context": "", "query": "What is X?", "output": "Y"}) == (
        "### Instruction:\nWhat is X?\n\n### Response:\n"
    )
    assert format_messages(record)[1] == {"role": "assistant", "content": "Retrognathia"}


def test_pick_query_is_stable_and_fixed_for_tasks():
    first = pick_query("hpo.definition", "uid-1", False, name="X")
    assert first == pick_query("hpo.definition", "uid-1", False, name="X")
    assert pick_query("hpo.definition", "uid-1", True, name="X") == ("What is X?", "hpo.definition.v0")


def test_buckets_cover_0_to_99_and_use_sha1():
    covered = sorted(b for r in BUCKETS.values() for b in r)
    assert covered == list(range(100))
    assert bucket("icd10cm:I21") == 86  # a fixed value: sha1, not Python's per-process salted hash()
    assert split_of("icd10cm:I21") == "test"
    assert bucket("icd10cm:I21", salt="other") == 54

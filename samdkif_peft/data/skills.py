"""SKILLS: the 12 SA-MDKIF skills (names fixed by the paper), each a row pairing real sources with recipes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SkillSpec:
    name: str
    description: str
    recipes: tuple[str, ...]  # keys of recipes.RECIPES; examples are drawn round-robin across them
    note: str = ""  # caveat shown in the dataset card
    task_categories: tuple[str, ...] = ("text-generation",)  # Hub dataset-card categories (also of its tasks)


_SPECS = (
    SkillSpec(
        "question_answering",
        "Open questions with real reference answers: HPO term definitions, ICD-10-PCS definitions, PubMedQA-style "
        "question titles answered by the study's conclusion.",
        ("hpo.definition", "cms.pcs_definition", "pubmed.question_answer"),
        "ICD-10-PCS definitions (~50) and PubMed question titles (~100) are small; HPO definitions dominate.",
        task_categories=("question-answering", "text-generation"),
    ),
    SkillSpec(
        "multiple_choice_qa",
        "Four-option questions with same-branch distractors: ICD-10-CM code among sibling codes, disease feature "
        "among sibling HPO phenotypes.",
        ("icd10cm.sibling_mcq", "hpo.disease_feature_mcq"),
        task_categories=("multiple-choice",),
    ),
    SkillSpec(
        "medical_conversation",
        "Multi-turn patient dialogues templated from real facts: HPO layperson phrases of co-annotated disease "
        "features, ICD-10-CM inclusion/Excludes1 notes, drug brand names, medical abbreviations.",
        ("hpo.symptom_dialogue", "icd10cm.code_dialogue", "drugs.brand_dialogue", "abbreviations.dialogue"),
        "Weakest skill: no real patient dialogues are available offline. Every dialogue is templated from real "
        "knowledge (the facts are real, the conversations are not).",
    ),
    SkillSpec(
        "multilabel_doc_classification",
        "Label assignment: PubMed abstracts to MeSH disease categories (OHSUMED-like), MeSH diseases to tree "
        "categories, diagnoses to ICD-10-CM chapters.",
        ("pubmed.mesh_categories", "diseases.mesh_categories", "icd10cm.chapter"),
        task_categories=("text-classification",),
    ),
    SkillSpec(
        "reading_comprehension",
        "Extractive questions over structured PubMed abstracts: the conclusion and the objective sections.",
        ("pubmed.conclusion_mrc", "pubmed.objective_mrc"),
        task_categories=("question-answering",),
    ),
    SkillSpec(
        "nli",
        "Premise/hypothesis pairs labelled by coding rules and curation: ICD-10-CM Excludes1/Excludes2/inclusion "
        "notes, HPO disease annotations including curated absences (NOT).",
        ("icd10cm.excludes_nli", "hpo.disease_nli"),
        task_categories=("text-classification",),
    ),
    SkillSpec(
        "summarization",
        "Real compressions: PubMed abstract to title, structured abstract to its conclusion, CMS long to short "
        "ICD-10-CM titles.",
        ("pubmed.title", "pubmed.conclusion_summary", "cms.short_title"),
        task_categories=("summarization",),
    ),
    SkillSpec(
        "ner",
        "Entity mentions in PubMed abstracts: drugs and diseases from dictionaries (silver labels), chemicals from "
        "the NLM indexers' chemical lists found in the text.",
        ("pubmed.ner_drug_disease", "pubmed.ner_chemicals"),
        "Drug/disease labels are distant (dictionary longest match), not hand-annotated.",
        task_categories=("token-classification",),
    ),
    SkillSpec(
        "relation_extraction",
        "Relation classification between two entities: ICD-10-CM instructional notes (code first, use additional, "
        "code also, excludes) and HPO disease-term relations (feature, excluded, inheritance, course).",
        ("icd10cm.note_relation", "hpo.disease_relation"),
        task_categories=("text-classification",),
    ),
    SkillSpec(
        "entity_attribute",
        "Attributes of an entity: ICD-10-CM code titles, billable status, drug identifiers and formulas, phenotype "
        "frequency in a disease.",
        ("icd10cm.code_title", "cms.billable", "drugs.attribute", "hpo.frequency"),
    ),
    SkillSpec(
        "entity_synonymy",
        "Normalising a surface form: ICD-10-CM inclusion terms, HPO exact and layperson synonyms, drug and MeSH "
        "disease variants, abbreviation expansion.",
        (
            "icd10cm.inclusion_synonym",
            "hpo.synonym",
            "hpo.lay_synonym",
            "drugs.synonym",
            "diseases.synonym",
            "abbreviations.expansion",
        ),
    ),
    SkillSpec(
        "entity_entity_relation",
        "Hierarchical relations: ICD-10-CM child to parent, HPO is_a, MeSH disease tree parents.",
        ("icd10cm.parent", "hpo.is_a", "diseases.mesh_parent"),
    ),
)

SKILLS: dict[str, SkillSpec] = {s.name: s for s in _SPECS}
SKILL_NAMES: tuple[str, ...] = tuple(SKILLS)

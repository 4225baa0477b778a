"""TASKS: the 9 downstream tasks for router training and evaluation, each with its metric and answer format.

Six are of a skill's type on held-out entities (the skill's recipe on buckets no skill trains on); three are unseen:
a formulation and label space that no skill dataset uses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    recipe: str  # key of recipes.RECIPES
    metric: str  # primary metric: accuracy, micro_f1 (over label/entity sets), rouge_l, exact_match
    output_format: str  # label | label_set | option | text | span | entities
    skill_type: str | None  # the skill whose type this task has; None for unseen tasks
    labels: tuple[str, ...] = ()  # closed label space where there is one
    extra_metrics: tuple[str, ...] = ()
    separator: str = ""  # how a label_set / entities output is joined

    @property
    def unseen(self) -> bool:
        return self.skill_type is None


NLI_LABELS = ("entailment", "neutral", "contradiction")
DDI_LABELS = ("contraindicated", "not recommended", "precaution for use", "take into account")

_SPECS = (
    TaskSpec(
        "icd10cm_chapter_classification",
        "Diagnosis title -> ICD-10-CM chapter title (22 classes) on held-out 3-character categories.",
        "icd10cm.chapter",
        "accuracy",
        "label",
        "multilabel_doc_classification",
        extra_metrics=("macro_f1",),
    ),
    TaskSpec(
        "hpo_definition_qa",
        "Phenotype name -> its HPO text definition, on held-out HPO terms.",
        "hpo.definition",
        "rouge_l",
        "text",
        "question_answering",
    ),
    TaskSpec(
        "pubmed_title_generation",
        "English PubMed abstract -> article title, on held-out PMIDs.",
        "pubmed.title",
        "rouge_l",
        "text",
        "summarization",
    ),
    TaskSpec(
        "pubmed_conclusion_extraction",
        "Structured PubMed abstract -> its CONCLUSIONS section (extractive), on held-out PMIDs.",
        "pubmed.conclusion_mrc",
        "exact_match",
        "span",
        "reading_comprehension",
        extra_metrics=("token_f1", "rouge_l"),
    ),
    TaskSpec(
        "icd10cm_excludes_nli",
        "ICD-10-CM code premise + note hypothesis -> entailment (inclusion term) / neutral (Excludes2) / "
        "contradiction (Excludes1), on held-out categories.",
        "icd10cm.excludes_nli",
        "accuracy",
        "label",
        "nli",
        labels=NLI_LABELS,
        extra_metrics=("macro_f1",),
    ),
    TaskSpec(
        "drug_disease_ner",
        "PubMed abstract -> drug and disease mentions (`TYPE: mention` lines; dictionary silver labels), on held-out "
        "PMIDs.",
        "pubmed.ner_drug_disease",
        "micro_f1",
        "entities",
        "ner",
        labels=("DRUG", "DISEASE"),
        separator="\n",
    ),
    TaskSpec(
        "elixhauser_comorbidity",
        "Diagnosis -> set of AHRQ Elixhauser comorbidity flags (multi-label ICD-coding-style task; `none` when the "
        "code maps to no comorbidity).",
        "elixhauser.comorbidity",
        "micro_f1",
        "label_set",
        None,
        extra_metrics=("exact_match", "macro_f1"),
        separator="; ",
    ),
    TaskSpec(
        "rare_disease_diagnosis",
        "HPO phenotype list -> rare disease, 4-option multiple choice with distractors sharing the most phenotypes.",
        "hpo.rare_disease_mcq",
        "accuracy",
        "option",
        None,
        labels=("A", "B", "C", "D"),
    ),
    TaskSpec(
        "ddi_severity",
        "Drug pair -> interaction severity in the ANSM thesaurus (4 English labels; drug names as in the French "
        "thesaurus).",
        "ansm.ddi_severity",
        "accuracy",
        "label",
        None,
        labels=DDI_LABELS,
        extra_metrics=("macro_f1",),
    ),
)

TASKS: dict[str, TaskSpec] = {t.name: t for t in _SPECS}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)

"""TASKS: the 9 downstream tasks for router training and evaluation, each with its metric and answer format.

Six are of a skill's type on held-out entities (the skill's recipe on buckets no skill trains on); three are unseen:
a formulation and label space that no skill dataset uses.
"""

from __future__ import annotations

from dataclasses import dataclass


OUTPUT_FORMATS = ("label", "label_set", "option", "text", "span", "entities")


@dataclass(frozen=True)
class TaskSpec:
    """One downstream task: the data build, the dataset card and the evaluation all read its answer space from here."""

    name: str
    description: str
    recipe: str  # key of recipes.RECIPES
    metric: str  # primary metric: a result key of evaluation.metrics.METRICS that its output_format offers
    output_format: str  # one of OUTPUT_FORMATS; selects the answer parser and the metric modules
    skill_type: str | None  # the skill whose type this task has; None for unseen tasks
    labels: tuple[str, ...] = ()  # closed label space where there is one: answers are parsed onto it
    extra_metrics: tuple[str, ...] = ()
    separator: str = ""  # how a label_set / entities output is joined

    def __post_init__(self) -> None:
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(
                f"Task {self.name!r} has output_format {self.output_format!r}; supported: {', '.join(OUTPUT_FORMATS)}"
            )

    @property
    def unseen(self) -> bool:
        return self.skill_type is None


NLI_LABELS = ("entailment", "neutral", "contradiction")
DDI_LABELS = ("contraindicated", "not recommended", "precaution for use", "take into account")  # most severe first
# The 22 chapter titles exactly as the built task writes them (simple-icd-10-cm 1.5.0, April 2026 tabular), stated
# here rather than read from the package so evaluation needs no data build; the test split has only 21 of them.
ICD10CM_CHAPTERS = (
    "Certain infectious and parasitic diseases (A00-B99)",
    "Neoplasms (C00-D49)",
    "Diseases of the blood and blood-forming organs and certain disorders involving the immune mechanism (D50-D89)",
    "Endocrine, nutritional and metabolic diseases (E00-E89)",
    "Mental, Behavioral and Neurodevelopmental disorders (F01-F99)",
    "Diseases of the nervous system (G00-G99)",
    "Diseases of the eye and adnexa (H00-H59)",
    "Diseases of the ear and mastoid process (H60-H95)",
    "Diseases of the circulatory system (I00-I99)",
    "Diseases of the respiratory system (J00-J99)",
    "Diseases of the digestive system (K00-K95)",
    "Diseases of the skin and subcutaneous tissue (L00-L99)",
    "Diseases of the musculoskeletal system and connective tissue (M00-M99)",
    "Diseases of the genitourinary system (N00-N99)",
    "Pregnancy, childbirth and the puerperium (O00-O9A)",
    "Certain conditions originating in the perinatal period (P00-P96)",
    "Congenital malformations, deformations and chromosomal abnormalities (Q00-QA0)",
    "Symptoms, signs and abnormal clinical and laboratory findings, not elsewhere classified (R00-R99)",
    "Injury, poisoning and certain other consequences of external causes (S00-T88)",
    "External causes of morbidity (V00-Y99)",
    "Factors influencing health status and contact with health services (Z00-Z99)",
    "Codes for special purposes (U00-U85)",
)

_SPECS = (
    TaskSpec(
        "icd10cm_chapter_classification",
        "Diagnosis title -> ICD-10-CM chapter title (22 classes) on held-out 3-character categories.",
        "icd10cm.chapter",
        "accuracy",
        "label",
        "multilabel_doc_classification",
        labels=ICD10CM_CHAPTERS,
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

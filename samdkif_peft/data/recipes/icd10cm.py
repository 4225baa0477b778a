"""ICD-10-CM recipes (`simple-icd-10-cm` tabular list); every unit is keyed by its 3-character category."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from functools import cached_property, partial

from samdkif_peft.data.recipes.base import Content, Recipe, Records, Sources, Unit, icd_key, options, recipe
from samdkif_peft.data.sources.icd10cm import TABULAR, IcdCode


PACKAGE = "simple-icd-10-cm"
CODES = Records(PACKAGE, TABULAR, lambda src: src.icd)


class IcdIndex:
    """Codes grouped under their parent code (categories under their block), for same-branch distractors."""

    def __init__(self, src: Sources):
        self.codes = src.icd

    @cached_property
    def children(self) -> dict[str, list[IcdCode]]:
        out: dict[str, list[IcdCode]] = defaultdict(list)
        for c in self.codes:
            out[self.parent_of(c)].append(c)
        return out

    @staticmethod
    def parent_of(c: IcdCode) -> str:
        return c.parent if c.parent else f"block:{c.block}"


@CODES.recipe(
    "icd10cm.code_title",
    "What is the title of this ICD-10-CM code?",
    "Give the official ICD-10-CM description of this code.",
)
def code_title(r: Recipe, c: IcdCode, source: str) -> Iterator[Unit]:
    yield r.unit(icd_key(c.code), c.code, f"ICD-10-CM code: {c.code}", c.desc, source)


@CODES.recipe(
    "icd10cm.chapter",
    "Which ICD-10-CM chapter does this diagnosis belong to? Answer with the chapter title.",
    "Classify this diagnosis into its ICD-10-CM chapter (give the chapter title).",
)
def chapter(r: Recipe, c: IcdCode, source: str) -> Iterator[Unit]:
    yield r.unit(icd_key(c.code), c.code, f"Diagnosis: {c.desc}", c.chapter, source)


@CODES.recipe(
    "icd10cm.inclusion_synonym",
    "Under which ICD-10-CM code and title is this term classified?",
    "Map this clinical term to its ICD-10-CM code and title.",
)
def inclusion_synonym(r: Recipe, c: IcdCode, source: str) -> Iterator[Unit]:
    for i, term in enumerate(c.inclusion_terms):
        yield r.unit(icd_key(c.code), f"{c.code}:{i}", f"Term: {term}", f"{c.code} {c.desc}", source)


@CODES.recipe(
    "icd10cm.parent",
    "What is the parent (broader) code of this ICD-10-CM code? Give the code and its title.",
    "Name the ICD-10-CM code directly above this one in the hierarchy, with its title.",
)
def parent(r: Recipe, c: IcdCode, source: str) -> Iterator[Unit]:
    if c.parent:
        yield r.unit(icd_key(c.code), c.code, f"ICD-10-CM: {c.code} {c.desc}", f"{c.parent} {c.parent_desc}", source)


@CODES.recipe(
    "icd10cm.excludes_nli",
    "Does the premise entail the hypothesis under ICD-10-CM coding rules? Answer entailment, neutral or "
    "contradiction.",
    "Under ICD-10-CM conventions, is the hypothesis an entailment, neutral or a contradiction of the premise?",
)
def excludes_nli(r: Recipe, c: IcdCode, source: str) -> Iterator[Unit]:
    """Excludes1 => contradiction (never coded together), Excludes2 => neutral (may co-exist), inclusion => entail."""
    premise = f"Premise: a patient's diagnosis is coded {c.code} ({c.desc})."
    pairs = [("contradiction", n, "e1") for n in c.excludes1] + [("neutral", n, "e2") for n in c.excludes2]
    if pairs and c.inclusion_terms:
        pairs.append(("entailment", c.inclusion_terms[0], "inc"))
    for i, (label, note, kind) in enumerate(pairs):
        if kind == "inc":
            hypothesis = f'Hypothesis: the diagnosis can be described as "{note}".'
        else:
            hypothesis = f'Hypothesis: the same patient may also be coded for "{note}".'
        yield r.unit(icd_key(c.code), f"{c.code}:{kind}{i}", f"{premise}\n{hypothesis}", label, source)


@recipe(
    "icd10cm.sibling_mcq",
    "Which ICD-10-CM code means: {desc}? Answer with the option letter and code.",
    'Pick the ICD-10-CM code for "{desc}" (answer with the letter and code).',
)
def sibling_mcq(r: Recipe, src: Sources) -> Iterator[Unit]:
    source = src.source_id(PACKAGE, TABULAR)
    index = src.index(IcdIndex)
    for c in src.icd:
        siblings = [s.code for s in index.children[index.parent_of(c)] if s.code != c.code]
        if len(siblings) >= 3:
            yield r.unit_from(icd_key(c.code), c.code, partial(_sibling_mcq, c, siblings, source))


def _sibling_mcq(c: IcdCode, siblings: list[str], source: str, rng: random.Random) -> Content:
    context, output = options(rng, c.code, rng.sample(siblings, 3))
    return Content(f"Options:\n{context}", output, source, {"desc": c.desc})


_NOTE_RELATIONS = (
    ("code first", "code_first"),
    ("use additional code", "use_additional"),
    ("code also", "code_also"),
    ("excludes1", "excludes1"),
    ("excludes2", "excludes2"),
)


@CODES.recipe(
    "icd10cm.note_relation",
    "Which ICD-10-CM instruction links condition 2 to condition 1? Answer one of: code first, use additional "
    "code, code also, excludes1, excludes2.",
    "Classify the coding relation between the two conditions: code first, use additional code, code also, "
    "excludes1 or excludes2.",
)
def note_relation(r: Recipe, c: IcdCode, source: str) -> Iterator[Unit]:
    for label, attr in _NOTE_RELATIONS:
        for i, note in enumerate(getattr(c, attr)):
            if len(note) < 8 or note.endswith(":"):  # headers such as "code, if applicable, to identify:"
                continue
            context = f"Condition 1: {c.code} {c.desc}\nCondition 2: {note.lstrip(', ')}"
            yield r.unit(icd_key(c.code), f"{c.code}:{attr}:{i}", context, label, source)


@CODES.recipe(
    "icd10cm.code_dialogue",
    "Continue the conversation as the doctor.",
    "Write the doctor's next reply.",
)
def code_dialogue(r: Recipe, c: IcdCode, source: str) -> Iterator[Unit]:
    """Templated patient-doctor exchange grounded in real inclusion terms and Excludes1 notes."""
    if c.inclusion_terms or c.excludes1:
        yield r.unit_from(icd_key(c.code), c.code, partial(_code_dialogue, c, source))


def _code_dialogue(c: IcdCode, source: str, rng: random.Random) -> Content:
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
    return Content(context, output, source)


RECIPES = (
    code_title,
    chapter,
    inclusion_synonym,
    parent,
    excludes_nli,
    sibling_mcq,
    note_relation,
    code_dialogue,
)

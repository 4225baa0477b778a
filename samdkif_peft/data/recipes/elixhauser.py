"""AHRQ Elixhauser recipe (`elixhauser-ahrq`): a label space no skill trains on, for an unseen downstream task."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from samdkif_peft.data.recipes import icd10cm
from samdkif_peft.data.recipes.base import Recipe, Sources, Unit, icd_key, recipe
from samdkif_peft.data.sources.elixhauser import WORKBOOK
from samdkif_peft.data.sources.icd10cm import TABULAR


PACKAGE = "elixhauser-ahrq"


@recipe(
    "elixhauser.comorbidity",
    "Which AHRQ Elixhauser comorbidity categories does this diagnosis map to? Choose from: {labels}. Answer the "
    'abbreviations separated by "; ", or none.',
)
def comorbidity(r: Recipe, src: Sources) -> Iterator[Unit]:
    """Diagnosis -> set of AHRQ Elixhauser flags; ICD-10-CM leaves outside the mapping are the "none" class."""
    data = src.elixhauser
    source = src.source_id(PACKAGE, WORKBOOK)
    labels = ", ".join(sorted({f for m in data.mappings for f in m.flags}))
    mapped = {m.code for m in data.mappings}
    for m in data.mappings:
        context = f"Diagnosis: {m.description} (ICD-10-CM {m.code})"
        yield r.unit(icd_key(m.code), m.code, context, "; ".join(m.flags), source, labels=labels)
    icd_source = src.source_id(icd10cm.PACKAGE, TABULAR)
    for c in src.icd:
        # about one leaf in twenty, so that "none" is common but not dominant (as in coded discharge data)
        if c.is_leaf and c.code not in mapped and int(hashlib.sha1(c.code.encode()).hexdigest(), 16) % 20 == 0:
            context = f"Diagnosis: {c.desc} (ICD-10-CM {c.code})"
            yield r.unit(icd_key(c.code), c.code, context, "none", icd_source, labels=labels)


RECIPES = (comorbidity,)

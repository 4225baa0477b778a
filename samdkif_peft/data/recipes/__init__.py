"""Recipes: real source records -> candidate examples `{context, query, output}` keyed by their knowledge unit.

A recipe is declared once, next to its source (`recipes/<source>.py`): its key, its instruction wordings and the
generator of its `Unit`s (entity key, unique id, a `make` callback). The builder decides from the key's hash which
split a unit belongs to, orders units by a seeded hash and only then calls `make`, so expensive rendering (NER
matching, distractor search) runs only for the examples that are kept. Skills and tasks share recipes: a task of a
skill's type is the same recipe on entities from buckets that skill never trains on.
"""

from __future__ import annotations

from samdkif_peft.data.recipes import ansm_ddi, cms, drugs, elixhauser, hpo, icd10cm, pubmed
from samdkif_peft.data.recipes.base import Content, Example, Recipe, Sources, Unit, recipe


RECIPES: dict[str, Recipe] = {
    r.key: r for module in (icd10cm, hpo, pubmed, drugs, cms, elixhauser, ansm_ddi) for r in module.RECIPES
}

__all__ = ["RECIPES", "Content", "Example", "Recipe", "Sources", "Unit", "recipe"]

"""Exact match after light normalisation (case, whitespace, trailing punctuation)."""

from __future__ import annotations

import re

import datasets
import evaluate


_DESCRIPTION = """
Exact match rate between generated and reference strings after light normalisation: lower case (unless
`ignore_case=False`), runs of whitespace collapsed to one space, surrounding whitespace and trailing punctuation
(`.,;:!?`) stripped. This is deliberately lighter than SQuAD's normalisation (which also drops articles and all
punctuation) so that an extractive span must be reproduced word for word; use `token_f1` for partial credit.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): generated strings.
    references (`list` of `str`): reference strings, one per prediction.
    ignore_case (`bool`, *optional*, defaults to `True`): compare case-insensitively.

Returns:
    exact_match (`float`): fraction of normalised predictions equal to their normalised reference, in [0, 1].

Examples:
    >>> from samdkif_peft.evaluation import load_metric
    >>> metric = load_metric("exact_match")
    >>> metric.compute(
    ...     predictions=["The drug  was effective.", "no effect", "Placebo"],
    ...     references=["the drug was effective", "No effect!", "placebo arm"],
    ... )
    {'exact_match': 0.6666666666666666}

    Case-sensitive comparison:
    >>> metric.compute(predictions=["Placebo."], references=["placebo"], ignore_case=False)
    {'exact_match': 0.0}
"""

_CITATION = """
@inproceedings{rajpurkar-etal-2016-squad,
  title={{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle={Proceedings of the 2016 Conference on Empirical Methods in Natural Language Processing},
  pages={2383--2392},
  year={2016}
}
"""

_TRAILING_PUNCTUATION = ".,;:!?"


def normalize(text: str, ignore_case: bool = True) -> str:
    """Collapse whitespace and drop trailing punctuation, so formatting noise is not scored as an error."""
    text = re.sub(r"\s+", " ", text).strip().rstrip(_TRAILING_PUNCTUATION).rstrip()
    return text.lower() if ignore_case else text


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExactMatch(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references, ignore_case=True) -> dict[str, float]:
        if not references:
            return {"exact_match": 0.0}
        hits = sum(normalize(p, ignore_case) == normalize(r, ignore_case) for p, r in zip(predictions, references))
        return {"exact_match": hits / len(references)}

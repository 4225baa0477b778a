"""SQuAD-style token F1: partial credit for overlapping bags of normalised tokens."""

from __future__ import annotations

import re
import string
from collections import Counter

import datasets
import evaluate


_DESCRIPTION = """
Token-level F1 as in the official SQuAD v1.1 evaluation script: both strings are lower-cased, punctuation and the
articles a/an/the are removed, whitespace is collapsed, and F1 is computed over the multiset of remaining tokens.
When either side has no tokens the score is 1 if both are empty and 0 otherwise. The result is the mean over
examples. Useful next to exact match for extractive answers, where a span that is off by a clause should still earn
credit.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): generated strings.
    references (`list` of `str`): reference strings, one per prediction.

Returns:
    token_f1 (`float`): mean per-example token F1, in [0, 1].

Examples:
    >>> from samdkif_peft.evaluation import load_metric
    >>> metric = load_metric("token_f1")
    >>> results = metric.compute(
    ...     predictions=["the drug reduced pain"], references=["Drug reduced the pain in adults."]
    ... )
    >>> print(round(results["token_f1"], 4))
    0.75
    >>> metric.compute(predictions=["", "An aspirin."], references=["", "aspirin"])
    {'token_f1': 1.0}
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

_PUNCTUATION = set(string.punctuation)


def normalize_tokens(text: str) -> list[str]:
    """SQuAD v1.1 `normalize_answer`, split into tokens."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return text.split()


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_tokens(prediction), normalize_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TokenF1(evaluate.Metric):
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

    def _compute(self, predictions, references) -> dict[str, float]:
        if not references:
            return {"token_f1": 0.0}
        return {"token_f1": sum(token_f1(p, r) for p, r in zip(predictions, references)) / len(references)}

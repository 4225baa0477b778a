"""Accuracy and macro-F1 over a closed label set (single-label classification and multiple choice)."""

from __future__ import annotations

import datasets
import evaluate


_DESCRIPTION = """
Accuracy and macro-averaged F1 for single-label classification, where each prediction and reference is one label
string (already parsed onto the closed label set, e.g. by `samdkif_peft.evaluation.parse_prediction`).

Accuracy is the fraction of predictions equal to their reference. Macro-F1 is the unweighted mean of the per-label
F1 over `labels` (default: the labels that occur in the references), with precision, recall or F1 taken as 0 when
undefined. This equals scikit-learn's `f1_score(references, predictions, average="macro", labels=labels,
zero_division=0)`. Averaging over the reference labels rather than over every predicted string keeps off-label
generations (a small LM's free text) from adding zero-F1 pseudo-classes; they still cost recall of the true class.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): predicted labels.
    references (`list` of `str`): gold labels, one per prediction.
    labels (`list` of `str`, *optional*): the labels macro-F1 averages over; defaults to the labels in
        `references`.
    ignore_case (`bool`, *optional*, defaults to `False`): compare labels case-insensitively.

Returns:
    accuracy (`float`): fraction of exact label matches, in [0, 1].
    macro_f1 (`float`): mean per-label F1 over `labels`, in [0, 1].

Examples:
    >>> from samdkif_peft.evaluation import load_metric
    >>> metric = load_metric("classification")
    >>> results = metric.compute(
    ...     predictions=["neutral", "neutral", "contradiction", "entailment"],
    ...     references=["neutral", "contradiction", "contradiction", "neutral"],
    ... )
    >>> print(results["accuracy"])
    0.5
    >>> print(round(results["macro_f1"], 4))
    0.5833

    Case-insensitive comparison:
    >>> metric.compute(predictions=["A", "b"], references=["a", "B"], ignore_case=True)
    {'accuracy': 1.0, 'macro_f1': 1.0}
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and Grisel, O. and
          Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and
          Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


def _f1(tp: int, fp: int, fn: int) -> float:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(self, predictions, references, labels=None, ignore_case=False) -> dict[str, float]:
        if ignore_case:
            predictions = [p.lower() for p in predictions]
            references = [r.lower() for r in references]
            labels = None if labels is None else [label.lower() for label in labels]
        if not references:
            return {"accuracy": 0.0, "macro_f1": 0.0}
        accuracy = sum(p == r for p, r in zip(predictions, references)) / len(references)
        averaged = sorted(set(references)) if labels is None else list(dict.fromkeys(labels))
        f1s = []
        for label in averaged:
            tp = sum(p == label and r == label for p, r in zip(predictions, references))
            fp = sum(p == label and r != label for p, r in zip(predictions, references))
            fn = sum(p != label and r == label for p, r in zip(predictions, references))
            f1s.append(_f1(tp, fp, fn))
        return {"accuracy": float(accuracy), "macro_f1": float(sum(f1s) / len(f1s)) if f1s else 0.0}

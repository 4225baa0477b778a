"""Micro-F1, macro-F1 and exact match over label sets: multi-label classification and typed entity sets."""

from __future__ import annotations

from collections import Counter

import datasets
import evaluate


_DESCRIPTION = """
Scores for set-valued answers, where each prediction and reference is a list of label strings treated as a set
(order and duplicates ignored; an empty list is the `none` answer). It serves multi-label classification (a set of
comorbidity flags) and entity extraction, where each element is one typed, normalised mention such as
`DRUG: aspirin`, so an entity only counts when both its type and its text match.

- micro_precision / micro_recall / micro_f1: true positives, false positives and false negatives summed over all
  examples and labels. When there is nothing to find and nothing was predicted they are 1 (a perfect `none`
  batch), matching scikit-learn's `zero_division=1`.
- macro_f1: mean per-label F1 over the labels that occur in the references (a per-label score is 0 when undefined;
  1 if the references have no labels and nothing was predicted). Predicted labels that never occur in the
  references still cost micro precision.
- exact_match: fraction of examples whose predicted set equals the reference set (subset accuracy).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): predicted label sets.
    references (`list` of `list` of `str`): gold label sets, one per prediction.
    ignore_case (`bool`, *optional*, defaults to `False`): compare labels case-insensitively.

Returns:
    micro_precision (`float`), micro_recall (`float`), micro_f1 (`float`), macro_f1 (`float`), exact_match
    (`float`): all in [0, 1].

Examples:
    >>> from samdkif_peft.evaluation import load_metric
    >>> metric = load_metric("label_set_f1")
    >>> results = metric.compute(
    ...     predictions=[["HF", "VALVE"], ["DIAB_CX"], []],
    ...     references=[["HF"], ["DIAB_CX", "OBESE"], []],
    ... )
    >>> print({k: round(v, 4) for k, v in results.items()})
    {'micro_precision': 0.6667, 'micro_recall': 0.6667, 'micro_f1': 0.6667, 'macro_f1': 0.6667, 'exact_match': 0.3333}

    Typed entities count only when type and mention both match:
    >>> results = metric.compute(
    ...     predictions=[["DRUG: aspirin", "DISEASE: pain"]], references=[["DRUG: aspirin", "DRUG: pain"]]
    ... )
    >>> print(results["micro_f1"])
    0.5
"""

_CITATION = """
@inproceedings{tjong-kim-sang-de-meulder-2003-introduction,
  title={Introduction to the {C}o{NLL}-2003 Shared Task: Language-Independent Named Entity Recognition},
  author={Tjong Kim Sang, Erik F. and De Meulder, Fien},
  booktitle={Proceedings of the Seventh Conference on Natural Language Learning at HLT-NAACL 2003},
  pages={142--147},
  year={2003}
}
"""


def _prf(tp: int, fp: int, fn: int, empty: float) -> tuple[float, float, float]:
    """Precision, recall, F1; `empty` when there is nothing to find and nothing was predicted."""
    if tp + fp + fn == 0:
        return empty, empty, empty
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LabelSetF1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/model_evaluation.html#multilabel-ranking-metrics"
            ],
        )

    def _compute(self, predictions, references, ignore_case=False) -> dict[str, float]:
        keys = ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "exact_match")
        if not references:
            return dict.fromkeys(keys, 0.0)
        fold = str.lower if ignore_case else str
        tp, fp, fn = Counter(), Counter(), Counter()
        exact = 0
        for prediction, reference in zip(predictions, references):
            pred, ref = {fold(p) for p in prediction}, {fold(r) for r in reference}
            exact += pred == ref
            tp.update(pred & ref)
            fp.update(pred - ref)
            fn.update(ref - pred)
        precision, recall, f1 = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()), empty=1.0)
        gold_labels = sorted(set(tp) | set(fn))
        if gold_labels:
            macro = sum(_prf(tp[label], fp[label], fn[label], empty=0.0)[2] for label in gold_labels) / len(
                gold_labels
            )
        else:
            macro = 0.0 if fp else 1.0
        values = (precision, recall, f1, macro, exact / len(references))
        return {k: float(v) for k, v in zip(keys, values)}

"""ROUGE-L F-measure (longest common subsequence) through Google's `rouge_score` package."""

from __future__ import annotations

import datasets
import evaluate
from rouge_score import rouge_scorer


_DESCRIPTION = """
ROUGE-L: F-measure of the longest common subsequence of tokens between a generated text and its reference, computed
with Google's `rouge_score` package (the implementation behind the Hub's `rouge` metric) and averaged over examples.
Its default tokenizer lower-cases and keeps only ASCII letters and digits. Stemming is off by default, as in the
Hub metric, so scores are comparable with `evaluate.load("rouge")["rougeL"]` with `use_aggregator=False` averaged.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): generated texts.
    references (`list` of `str`): reference texts, one per prediction.
    use_stemmer (`bool`, *optional*, defaults to `False`): apply the Porter stemmer before matching.

Returns:
    rouge_l (`float`): mean per-example ROUGE-L F-measure, in [0, 1].
    rouge_l_precision (`float`): mean per-example LCS precision.
    rouge_l_recall (`float`): mean per-example LCS recall.

Examples:
    >>> from samdkif_peft.evaluation import load_metric
    >>> metric = load_metric("rouge_l")
    >>> results = metric.compute(
    ...     predictions=["abnormal shape of the lacrimal gland"],
    ...     references=["Abnormality of the lacrimal gland."],
    ... )
    >>> print({k: round(v, 4) for k, v in results.items()})
    {'rouge_l': 0.7273, 'rouge_l_precision': 0.6667, 'rouge_l_recall': 0.8}
"""

_CITATION = """
@inproceedings{lin-2004-rouge,
  title={{ROUGE}: A Package for Automatic Evaluation of Summaries},
  author={Lin, Chin-Yew},
  booktitle={Text Summarization Branches Out},
  pages={74--81},
  year={2004},
  publisher={Association for Computational Linguistics}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RougeL(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
            reference_urls=["https://aclanthology.org/W04-1013/"],
        )

    def _compute(self, predictions, references, use_stemmer=False) -> dict[str, float]:
        if not references:
            return {"rouge_l": 0.0, "rouge_l_precision": 0.0, "rouge_l_recall": 0.0}
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
        scores = [scorer.score(r, p)["rougeL"] for p, r in zip(predictions, references)]
        n = len(scores)
        return {
            "rouge_l": sum(s.fmeasure for s in scores) / n,
            "rouge_l_precision": sum(s.precision for s in scores) / n,
            "rouge_l_recall": sum(s.recall for s in scores) / n,
        }

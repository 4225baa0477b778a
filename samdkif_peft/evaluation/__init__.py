"""Scoring for the 9 downstream tasks: answer parsing, packaged `evaluate` metric modules, `score_task`.

    from samdkif_peft.evaluation import load_metric, parse_prediction, score_task
    score_task("rare_disease_diagnosis", ["B", "(C) Marfan syndrome"], ["(B) Noonan syndrome", "(C) Marfan syndrome"])
    load_metric("label_set_f1")  # evaluate.load by path: works offline

Metrics per task and the parsing rules: docs/EVALUATION.md.
"""

from samdkif_peft.data.tasks import ICD10CM_CHAPTERS
from samdkif_peft.evaluation.metrics import METRIC_NAMES, METRICS, load_metric, metric_path
from samdkif_peft.evaluation.parsing import (
    cut_generation,
    match_label,
    normalize_text,
    parse_entities,
    parse_label_set,
    parse_option,
    parse_options,
    parse_prediction,
    task_labels,
)
from samdkif_peft.evaluation.scoring import FORMAT_METRICS, score_task, task_metric_names


__all__ = [
    "FORMAT_METRICS",
    "ICD10CM_CHAPTERS",
    "METRICS",
    "METRIC_NAMES",
    "cut_generation",
    "load_metric",
    "match_label",
    "metric_path",
    "normalize_text",
    "parse_entities",
    "parse_label_set",
    "parse_option",
    "parse_options",
    "parse_prediction",
    "score_task",
    "task_labels",
    "task_metric_names",
]

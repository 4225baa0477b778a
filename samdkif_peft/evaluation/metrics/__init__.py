"""The metric modules shipped in this package: the one registry of their names and result keys, and their loader.

`evaluate.load("accuracy")` fetches the metric script from the Hub, so it fails offline; loading the packaged file
by path never touches the network. Each module lives in `<name>/<name>.py` (evaluate style, with a `README.md`
metric card); task scoring reads which result keys a module returns from `METRICS`.
"""

from __future__ import annotations

from pathlib import Path

import evaluate


METRICS_DIR = Path(__file__).resolve().parent

# name -> the result keys it returns; one module serves every task with that answer shape (see docs/EVALUATION.md)
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1"),
    "exact_match": ("exact_match",),
    "label_set_f1": ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "exact_match"),
    "token_f1": ("token_f1",),
    "rouge_l": ("rouge_l", "rouge_l_precision", "rouge_l_recall"),
}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def metric_path(name: str) -> Path:
    """Path of the packaged metric module `name` (`metrics/<name>/<name>.py`)."""
    if name not in METRICS:
        raise ValueError(
            f"Unknown metric {name!r}; samdkif_peft ships only: {', '.join(METRIC_NAMES)}. For a Hub metric use "
            "evaluate.load(...) directly (needs network)."
        )
    return METRICS_DIR / name / f"{name}.py"


def load_metric(name: str, **kwargs) -> evaluate.EvaluationModule:
    """`evaluate.load` of a packaged metric by path, kept in memory (no cache files, no Hub access).

    Args:
        name (`str`):
            One of `METRIC_NAMES`.
        kwargs:
            Passed on to `evaluate.load` (e.g. `experiment_id` for concurrent runs).
    """
    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(metric_path(name)), **kwargs)

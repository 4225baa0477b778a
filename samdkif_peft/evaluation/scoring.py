"""`score_task`: parse predictions and references for one downstream task and score them with the packaged metrics."""

from __future__ import annotations

from collections.abc import Sequence

from samdkif_peft.data.tasks import TaskSpec
from samdkif_peft.evaluation.metrics import METRICS, load_metric
from samdkif_peft.evaluation.parsing import parse_prediction, resolve_task


# output_format -> the packaged modules that score it
_FORMAT_MODULES: dict[str, tuple[str, ...]] = {
    "label": ("classification",),
    "option": ("classification",),
    "label_set": ("label_set_f1",),
    "entities": ("label_set_f1",),
    "text": ("exact_match", "token_f1", "rouge_l"),
    "span": ("exact_match", "token_f1", "rouge_l"),
}


def _key_owners(modules: tuple[str, ...]) -> dict[str, str]:
    """Result key -> the first of `modules` that returns it, as declared in `METRICS`."""
    owners: dict[str, str] = {}
    for module in modules:
        for key in METRICS[module]:
            owners.setdefault(key, module)
    return owners


# output_format -> {metric key a TaskSpec may name -> packaged module that computes it}. The same key can come from
# different modules: `exact_match` is subset accuracy for label sets but normalised string equality for spans.
FORMAT_METRICS: dict[str, dict[str, str]] = {fmt: _key_owners(modules) for fmt, modules in _FORMAT_MODULES.items()}


def task_metric_names(task: str | TaskSpec) -> tuple[str, ...]:
    """The keys `score_task` returns: the primary metric, then the extra metrics."""
    spec = resolve_task(task)
    return tuple(dict.fromkeys((spec.metric, *spec.extra_metrics)))


def _check_strings(name: str, values: Sequence, task: str) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{task}: {name} must be a list of strings, got a single str; wrap it in a list")
    values = list(values)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(f"{task}: {name}[{i}] is {type(value).__name__} ({value!r}); pass decoded strings")
    return values


def score_task(
    task: str | TaskSpec,
    predictions: Sequence[str],
    references: Sequence[str],
    contexts: Sequence[str] | None = None,
    details: bool = False,
) -> dict[str, float]:
    """Score generated answers for a downstream task with its primary and extra metrics, all in [0, 1].

    Args:
        task (`str` or `TaskSpec`): a task name from `samdkif_peft.data.TASKS` or its spec.
        predictions (`list` of `str`): generated continuations (the text after "### Response:").
        references (`list` of `str`): the records' `output` column.
        contexts (`list` of `str`, *optional*): the records' `context` column; lets `option` tasks match an answer
            given as option text without its letter.
        details (`bool`, *optional*, defaults to `False`): also return every other key the metric modules compute
            (e.g. `micro_precision`, `micro_recall`, `rouge_l_recall`).

    Returns:
        `dict[str, float]` with `task.metric` first, then each of `task.extra_metrics`.
    """
    spec = resolve_task(task)
    predictions = _check_strings("predictions", predictions, spec.name)
    references = _check_strings("references", references, spec.name)
    if len(predictions) != len(references):
        raise ValueError(
            f"{spec.name}: got {len(predictions)} predictions but {len(references)} references; pass one prediction "
            "per reference, in the same order"
        )
    if not references:
        raise ValueError(f"{spec.name}: predictions and references are empty; pass at least one example")
    if contexts is None:
        contexts = [None] * len(references)
    else:
        contexts = _check_strings("contexts", contexts, spec.name)
        if len(contexts) != len(references):
            raise ValueError(
                f"{spec.name}: got {len(contexts)} contexts for {len(references)} references; pass the `context` "
                "column of the same records, or contexts=None"
            )
    sources = FORMAT_METRICS.get(spec.output_format)
    if sources is None:
        raise ValueError(
            f"Task {spec.name!r} has output_format {spec.output_format!r}; supported: {', '.join(FORMAT_METRICS)}"
        )
    wanted = task_metric_names(spec)
    unsupported = [m for m in wanted if m not in sources]
    if unsupported:
        raise ValueError(
            f"Task {spec.name!r} asks for {unsupported} but {spec.output_format!r} answers support only "
            f"{', '.join(sources)}; change the TaskSpec's metric/extra_metrics"
        )

    parsed_predictions = [parse_prediction(spec, p, c) for p, c in zip(predictions, contexts)]
    parsed_references = [parse_prediction(spec, r, c) for r, c in zip(references, contexts)]
    results: dict[str, float] = {}
    modules = dict.fromkeys(sources[m] for m in wanted)  # each module runs once, in the order first needed
    for name in modules:
        computed = load_metric(name).compute(predictions=parsed_predictions, references=parsed_references)
        for key, value in computed.items():
            if sources.get(key, name) == name:  # a key another module owns for this format is not ours to report
                results.setdefault(key, float(value))
    ordered = {m: results[m] for m in wanted}
    if details:
        ordered.update({k: v for k, v in results.items() if k not in ordered})
    return ordered

"""What kind of task a user's data is, decided from the data, and the `TaskSpec` that scores it.

- **multiple choice**: every context lists options as `(A) ...` lines and every answer is one of them, `(B) text`
  or `B`; scored over the record's options.
- **label**: at most `MAX_LABELS` distinct training answers that cover at least `MIN_LABEL_COVERAGE` of the test
  answers; scored by option log-likelihood over the labels and by generation.
- **generation**: anything else; ROUGE-L, exact match and token F1 on greedy answers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from samdkif_peft.data.tasks import TaskSpec


KINDS = ("label", "multiple_choice", "generation")
MAX_LABELS = 50
MIN_LABEL_COVERAGE = 0.95
_LETTER_ANSWER = re.compile(r"^\(?([A-Z])\)?(?:\s|$)")
# kind -> (TaskSpec.output_format, primary metric, extra metrics)
_SCORING = {
    "label": ("label", "accuracy", ("macro_f1",)),
    "multiple_choice": ("option", "accuracy", ("macro_f1",)),
    "generation": ("text", "rouge_l", ("exact_match", "token_f1")),
}


def detect_kind(train, test) -> str:
    """`"multiple_choice"`, `"label"` or `"generation"` from the answers (and options) of both splits."""
    if _is_multiple_choice(train) and _is_multiple_choice(test):
        return "multiple_choice"
    labels = Counter(o.strip() for o in train["output"])
    if len(labels) <= MAX_LABELS:
        covered = sum(o.strip() in labels for o in test["output"]) / max(1, len(test))
        if covered >= MIN_LABEL_COVERAGE:
            return "label"
    return "generation"


def task_spec(name: str, kind: str, train) -> TaskSpec:
    """The `TaskSpec` the evaluation code scores `kind` with; labels (most frequent first) from the train answers."""
    if kind not in KINDS:
        raise ValueError(f"Unknown task kind {kind!r}; choose from: {', '.join(KINDS)}")
    output_format, metric, extra = _SCORING[kind]
    labels: tuple[str, ...] = ()
    if kind == "label":
        labels = tuple(label for label, _ in Counter(o.strip() for o in train["output"]).most_common())
        if len(labels) < 2:
            raise ValueError(
                f"Every training answer is {labels[0]!r}: a label task needs at least 2 labels; check the output "
                "column, or pass --kind generation"
            )
    elif kind == "multiple_choice":
        from samdkif_peft.evaluation.parsing import parse_options

        letters = sorted({letter for c in train["context"] for letter in parse_options(c)})
        labels = tuple(letters)
    return TaskSpec(
        name=name,
        description=f"user task ({kind})",
        recipe="",
        metric=metric,
        output_format=output_format,
        skill_type=None,
        labels=labels,
        extra_metrics=extra,
    )


def _is_multiple_choice(split) -> bool:
    """Options in every context and every answer naming one of them (`(B)`, `(B) text` or `B`)."""
    from samdkif_peft.evaluation.parsing import parse_options

    return len(split) > 0 and all(
        _answer_letter(output) in parse_options(context) for context, output in zip(split["context"], split["output"])
    )


def _answer_letter(output: str) -> str | None:
    match = _LETTER_ANSWER.match(output.strip())
    return match.group(1) if match else None


def label_summary(spec: TaskSpec, outputs: Sequence[str]) -> str:
    """One line for the console: the kind and, for label tasks, the labels with their training counts."""
    if spec.output_format == "text":
        return "generation (scored by ROUGE-L, exact match and token F1)"
    if spec.output_format == "option":
        return f"multiple choice over options {', '.join(spec.labels)} (scored over each record's options)"
    counts = Counter(o.strip() for o in outputs)
    shown = ", ".join(f"{label!r} x{counts[label]}" for label in spec.labels[:8])
    more = f", ... ({len(spec.labels)} labels)" if len(spec.labels) > 8 else ""
    return f"label: {shown}{more} (scored by option log-likelihood and by generation)"

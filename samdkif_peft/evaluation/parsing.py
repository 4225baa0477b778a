"""Turn generated text (and reference answers) into comparable answers, one rule per `TaskSpec.output_format`.

Both sides go through the same parser, so a reference always scores 1.0 against itself. Parsing is lenient about
form (case, a trailing period, "Answer: B", a model that keeps generating a new "### Instruction:") but never
guesses content: text that matches no label stays as its own normalised string, so it counts as wrong instead of
being mapped to a default class.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from samdkif_peft.data.tasks import OUTPUT_FORMATS, TASKS, TaskSpec


# End-of-text strings of the tokenizers we generate with (SmolLM2, Llama, T5-style), in case decoding kept them.
END_OF_TEXT = ("<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "</s>")

_SECTION = re.compile(r"^[ \t]*###", re.MULTILINE)  # a new prompt section: "### Instruction:", "### Input:", ...
_WRAPPING = "\"'`*“”‘’ \t\n"
_TRAILING_PUNCTUATION = ".,;:!?"
_ANSWER_PREFIX = re.compile(
    r"^(?:the\s+)?(?:correct\s+|final\s+)?(?:answer|response|label|option|choice)\b(?:\s+is)?\s*[:\-]?\s*",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_OPTION_LINE = re.compile(r"^\s*\(([A-Z])\)\s*(.+?)\s*$", re.MULTILINE)
_ENTITY_LINE = re.compile(r"^([A-Za-z][A-Za-z_ ]*?)\s*:\s*(.+)$")


def resolve_task(task: str | TaskSpec) -> TaskSpec:
    """The `TaskSpec` for a task or its name."""
    if isinstance(task, TaskSpec):
        return task
    if isinstance(task, str) and task in TASKS:
        return TASKS[task]
    raise ValueError(f"Unknown task {task!r}; pass a TaskSpec or one of: {', '.join(TASKS)}")


def task_labels(task: str | TaskSpec) -> tuple[str, ...]:
    """`TaskSpec.labels` of a task or its name: the closed label space, empty for open answers."""
    return resolve_task(task).labels


def cut_generation(text: str) -> str:
    """The answer part of a generation: up to end-of-text and the first line starting a new `###` prompt section.

    A small LM rarely stops at its answer; it goes on with "### Instruction:" and a made-up next example.
    """
    for marker in END_OF_TEXT:
        text = text.split(marker, 1)[0]
    match = _SECTION.search(text)
    if match:
        text = text[: match.start()]
    return text.strip()


def normalize_text(text: str) -> str:
    """Lower case, one space between words, no wrapping quotes/markdown and no trailing punctuation."""
    text = " ".join(text.split()).lower()
    previous = None
    while text != previous:  # "**Neutral.**" needs both strips, in either order
        previous = text
        text = text.strip(_WRAPPING).rstrip(_TRAILING_PUNCTUATION)
    return text


def _strip_answer_prefix(text: str) -> str:
    return normalize_text(_ANSWER_PREFIX.sub("", text, count=1))


def _at_word_start(text: str, phrase: str) -> bool:
    """`text` starts with `phrase` followed by a non-word character or the end."""
    return text.startswith(phrase) and (len(text) == len(phrase) or not text[len(phrase)].isalnum())


def _contains_word_phrase(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def _aliases(label: str) -> list[str]:
    """The normalised label, plus the label without a trailing "(code range)" as models often drop it."""
    norm = normalize_text(label)
    short = re.sub(r"\s*\([^()]*\)$", "", norm)
    return [norm, short] if short and short != norm else [norm]


def match_label(text: str, labels: Iterable[str]) -> str:
    """The label `text` names, else `normalize_text(text)` (which then scores as wrong).

    In order: exact match (with or without a trailing code range); the text starts with a label (the longest wins:
    the model stated its answer, then kept talking); the text is a truncated label matching one label only; the
    text contains exactly one label. Matches are on whole words, so "neutrality" is not "neutral".
    """
    norm = _strip_answer_prefix(text)
    if not norm:
        return ""
    pairs = [(alias, label) for label in labels for alias in _aliases(label)]
    for alias, label in pairs:
        if norm == alias:
            return label
    starts = [(alias, label) for alias, label in pairs if _at_word_start(norm, alias)]
    if starts:
        return max(starts, key=lambda pair: len(pair[0]))[1]
    truncated = {label for alias, label in pairs if _at_word_start(alias, norm)}
    if len(truncated) == 1:
        return truncated.pop()
    contained = {label for alias, label in pairs if _contains_word_phrase(norm, alias)}
    if len(contained) == 1:
        return contained.pop()
    return norm


def parse_options(context: str) -> dict[str, str]:
    """`{"A": "Marfan syndrome", ...}` from the "(A) text" lines of a multiple-choice prompt context."""
    return {letter: text for letter, text in _OPTION_LINE.findall(context or "")}


def parse_option(text: str, letters: Iterable[str] = "ABCD", context: str | None = None) -> str:
    """The chosen option letter, read from "B", "B.", "(B) ...", "Answer: B", or from the option text.

    A bare letter must be upper case and followed by punctuation or the end ("A patient ..." is not option A),
    unless an "Answer:" prefix makes it explicit. When both a letter and an option text are given, the letter wins.
    Unparseable text comes back normalised, so it never equals a letter.
    """
    letters = "".join(letters)
    answer = cut_generation(text).strip(_WRAPPING)
    letter = f"[{re.escape(letters)}]"
    explicit = _ANSWER_PREFIX.match(answer)
    rest = answer[explicit.end() :] if explicit else answer
    patterns = [rf"^\(({letter})\)", rf"^({letter})(?:[.):,]|\s+-|[ \t]*(?:\n|$))"]
    if explicit:
        patterns.append(rf"^({letter})(?!\w)")
    for pattern in patterns:
        match = re.match(pattern, rest)
        if match:
            return match.group(1)
    stated = re.search(rf"(?i:\banswer\b)(?:\s+is)?\s*[:\-]?\s*\(?({letter})(?!\w)", answer)
    if stated:
        return stated.group(1)
    bracketed = set(re.findall(rf"\(({letter})\)", answer))
    if len(bracketed) == 1:
        return bracketed.pop()
    options = {k: v for k, v in parse_options(context or "").items() if k in letters}
    if options:
        matched = match_label(answer, options.values())
        for key, option in options.items():
            if option == matched:
                return key
    return normalize_text(answer)


def parse_label_set(text: str, separator: str = "; ") -> list[str]:
    """Sorted, deduplicated, normalised labels; `none` (or nothing) is the empty set.

    Splits on the task separator and also on commas, semicolons and newlines, since models mix them.
    """
    answer = cut_generation(text)
    answer = _ANSWER_PREFIX.sub("", answer.strip(_WRAPPING), count=1)
    delimiters = ",;\n" + (separator.strip() if separator.strip() not in ",;" else "")
    items = (normalize_text(_BULLET.sub("", part)) for part in re.split(f"[{re.escape(delimiters)}]", answer))
    return sorted({item for item in items if item and item != "none"})


def parse_entities(text: str, types: Iterable[str] = ()) -> list[str]:
    """Sorted unique `"TYPE: mention"` strings (type upper case, mention normalised) from `TYPE: mention` lines.

    Lines that are not `TYPE: mention`, or whose type is not in `types` (when given), are ignored: they are
    commentary, not a wrong entity. Several entities on one line joined by ";" are split.
    """
    allowed = {t.upper() for t in types}
    entities = set()
    for line in cut_generation(text).splitlines():
        for part in re.split(r";\s*(?=[A-Za-z_]+\s*:)", line):
            match = _ENTITY_LINE.match(_BULLET.sub("", part.strip()))
            if not match:
                continue
            kind = "_".join(match.group(1).split()).upper()
            mention = normalize_text(match.group(2))
            if mention and (not allowed or kind in allowed):
                entities.add(f"{kind}: {mention}")
    return sorted(entities)


def parse_prediction(task: str | TaskSpec, text: str, context: str | None = None) -> str | list[str]:
    """The normalised answer in `text` for `task`, per its `output_format`.

    Args:
        task (`str` or `TaskSpec`): a task name from `samdkif_peft.data.TASKS` or its spec.
        text (`str`): the generated continuation (not the prompt), or a reference answer.
        context (`str`, *optional*): the record's context; `option` tasks read the option texts from it, so an
            answer that gives the disease name without its letter still counts.

    Returns:
        `str` for label (a canonical label, or the normalised text when none matches), option (the letter), text and
        span (cut and stripped); sorted `list[str]` for label_set and entities.
    """
    spec = resolve_task(task)
    if not isinstance(text, str):
        raise TypeError(f"{spec.name}: expected a str answer, got {type(text).__name__} ({text!r}); decode first")
    kind = spec.output_format
    if kind == "label":
        if spec.labels:
            return match_label(cut_generation(text), spec.labels)
        return _strip_answer_prefix(cut_generation(text))
    if kind == "option":
        return parse_option(text, spec.labels or "ABCD", context)
    if kind == "label_set":
        return parse_label_set(text, spec.separator)
    if kind == "entities":
        return parse_entities(text, spec.labels)
    if kind in ("text", "span"):
        return cut_generation(text)
    raise ValueError(f"Task {spec.name!r} has output_format {kind!r}; supported: {', '.join(OUTPUT_FORMATS)}")

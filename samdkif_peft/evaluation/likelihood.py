"""Constrained scoring of closed-answer tasks: rank the allowed answers by the model's log-likelihood.

Free generation measures format as much as knowledge (a base model that rambles past the template scores 0 on a task
it half knows). For tasks with a closed answer space (NLI, classification, multiple choice, DDI severity) the model
instead scores every allowed answer `a` after the prompt `p` and picks the most likely one:

    score(a | p) = Σ_t log P(a_t | p, a_<t)   over the answer's tokens followed by EOS      (`normalization="sum"`)
    score(a | p) = score(a | p) / (len(a) + 1)                                              (`normalization="mean"`)

`"sum"` (the default) is the probability of generating exactly that answer and stopping, which is what greedy
decoding of a trained adapter approximates; EOS is included so that an answer that is a prefix of another ("code
first" vs "code first, then ...") is not favoured. `"mean"` removes the bias towards short answers that a model not
trained on the label space has (lm-evaluation-harness' `acc_norm` normalises by characters instead); both are
returned, so a report can show either.

Each prompt runs once through the model (left-padded, its KV cache kept) and every option continues from that cache,
so scoring 22 chapter titles costs one prompt forward plus 22 short ones. The sequence router therefore routes on the
prompt alone, exactly as in training and in `generate`. A model that cannot continue from a cache (peft's X-LoRA,
whose scaling pass would append every option to the cache a second time; its config says `use_cache=False`) is scored
on each full `prompt + option` sequence instead: the same numbers for a model that could do both, one full forward per
option.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from samdkif_peft.data.tasks import TaskSpec
from samdkif_peft.data.templates import format_prompt
from samdkif_peft.evaluation.generation import load_test_split
from samdkif_peft.evaluation.metrics import load_metric
from samdkif_peft.evaluation.parsing import parse_options, resolve_task


NORMALIZATIONS = ("sum", "mean")


def option_log_likelihoods(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    options: Sequence[Sequence[str]],
    *,
    batch_size: int = 16,
    progress: bool = False,
    use_cache: bool | None = None,
) -> list[list[tuple[float, int]]]:
    """`(sum of log-probabilities, number of tokens)` of every option (plus EOS) after its prompt.

    Args:
        prompts (`list[str]`): model inputs, ending where the answer starts (e.g. `format_prompt(record)`).
        options (`list[list[str]]`): the allowed answers of each prompt (the same list for a closed label set).
        batch_size (`int`): prompt + option sequences per forward; they are sorted by length to limit padding.
        use_cache (`bool`, *optional*): continue every option from the prompt's KV cache (fast); `False` scores each
            full `prompt + option` sequence. Defaults to True for our routers, else the model config's `use_cache`
            (off for peft's X-LoRA).
    """
    if len(prompts) != len(options):
        raise ValueError(f"Got {len(prompts)} prompts but {len(options)} option lists; pass one list per prompt")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if eos is None:
        raise ValueError("The tokenizer has no eos_token; set tokenizer.eos_token to the token that ends an answer")
    for i, opts in enumerate(options):
        if isinstance(opts, str) or not opts or not all(isinstance(o, str) and o for o in opts):
            raise ValueError(f"options[{i}] must be a non-empty list of non-empty strings, got {opts!r}")
    prompt_ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    distinct = sorted({o for opts in options for o in opts})
    option_ids = dict(zip(distinct, tokenizer(distinct, add_special_tokens=False)["input_ids"]))
    order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))
    scores: list[list[tuple[float, int]]] = [[(0.0, 0)] * len(opts) for opts in options]
    device = next(model.parameters()).device
    if use_cache is None:
        use_cache = _continues_from_cache(model)
    score_batch = _score_batch if use_cache else _score_batch_without_cache
    was_training = model.training
    model.eval()
    try:
        batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
        for batch in tqdm(batches, desc="scoring options", disable=not progress):
            answers = [[[*option_ids[o], eos] for o in options[i]] for i in batch]
            for i, rows in zip(batch, score_batch(model, [prompt_ids[i] for i in batch], answers, pad, device)):
                scores[i] = rows
    finally:
        model.train(was_training)
    return scores


@torch.no_grad()
def _score_batch(model: Any, prompts: list[list[int]], answers: list[list[list[int]]], pad: int, device: Any):
    """One prompt forward (left-padded, KV cache kept), then one short forward per option slot on that cache.

    Every prompt is processed once however many options it has; the cache is cropped back to the prompt after each
    option, so it stays the object the sequence router remembered the prompt's gates for.
    """
    ids, mask = _left_padded(prompts, pad, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V): the answer's first token
    cache = out.past_key_values
    next_position = positions[:, -1:] + 1
    results: list[list[tuple[float, int]]] = [[] for _ in prompts]
    for slot in range(max(len(a) for a in answers)):
        rows = [r for r, a in enumerate(answers) if slot < len(a)]
        length = max(len(answers[r][slot]) for r in rows)
        cont = torch.full((len(prompts), length), pad, dtype=torch.long)
        cont_mask = torch.zeros((len(prompts), length), dtype=torch.long)
        for r in rows:
            tokens = answers[r][slot]
            cont[r, : len(tokens)] = torch.tensor(tokens)
            cont_mask[r, : len(tokens)] = 1
        cont, cont_mask = cont.to(device), cont_mask.to(device)
        total = first.gather(-1, cont[:, :1]).squeeze(-1)  # (B,)
        if length > 1:
            # the last answer token predicts nothing we score, so it is not fed
            step = model(
                input_ids=cont[:, :-1],
                attention_mask=torch.cat([mask, cont_mask[:, :-1]], dim=-1),
                position_ids=next_position + torch.arange(length - 1, device=device),
                past_key_values=cache,
                use_cache=True,
            )
            logprobs = torch.log_softmax(step.logits.float(), dim=-1).gather(-1, cont[:, 1:, None]).squeeze(-1)
            total = total + (logprobs * cont_mask[:, 1:]).sum(-1)
            cache.crop(-(length - 1))  # back to the prompt: negative = tokens to remove
        for r in rows:
            results[r].append((float(total[r]), len(answers[r][slot])))
    return results


def _left_padded(rows: list[list[int]], pad: int, device: Any):
    """`(ids, mask)` of token lists right-aligned (left-padded) to the longest of them."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[r, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def _continues_from_cache(model: Any) -> bool:
    """Our routers always do (a sequence router must keep its prompt gates, even where a training recipe switched
    `config.use_cache` off); any other model as its config says (peft requires it off for X-LoRA)."""
    from samdkif_peft.tuner.model import SkillRouterModel

    if isinstance(getattr(model, "base_model", None), SkillRouterModel):
        return True
    return getattr(getattr(model, "config", None), "use_cache", True) is not False


@torch.no_grad()
def _score_batch_without_cache(model: Any, prompts: list[list[int]], answers: list[list[list[int]]], pad: int,
                               device: Any):  # fmt: skip
    """`_score_batch` for models without a usable KV cache: one left-padded forward of `prompt + option` per option
    slot, keeping only the logits that predict the options' tokens."""
    results: list[list[tuple[float, int]]] = [[] for _ in prompts]
    for slot in range(max(len(a) for a in answers)):
        rows = [r for r, a in enumerate(answers) if slot < len(a)]
        ids, mask = _left_padded([prompts[r] + answers[r][slot] for r in rows], pad, device)
        # the options right-aligned like the sequences, so they line up with the last logits
        targets, target_mask = _left_padded([answers[r][slot] for r in rows], pad, device)
        keep = targets.shape[1] + 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        # the last `keep` positions: the one before the longest answer, then the answers (the very last predicts
        # nothing we score)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep)
        logprobs = torch.log_softmax(out.logits[:, :-1].float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)
        totals = (logprobs * target_mask).sum(-1)
        for b, r in enumerate(rows):
            results[r].append((float(totals[b]), len(answers[r][slot])))
    return results


def pick_options(
    scores: Sequence[Sequence[tuple[float, int]]], normalization: str = "sum"
) -> list[int]:  # fmt: skip
    """Index of the best option per prompt under `normalization` (`"sum"` or `"mean"`; see the module docstring)."""
    return [max(range(len(row)), key=row.__getitem__) for row in _normalized(scores, normalization)]


def _normalized(scores: Sequence[Sequence[tuple[float, int]]], normalization: str) -> list[list[float]]:
    """Each option's score under `normalization`: the summed log-probability, or that sum per scored token."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization == "sum":
        return [[total for total, _ in row] for row in scores]
    return [[total / max(1, n) for total, n in row] for row in scores]


def batch_calibrate(scores: Sequence[Sequence[float]]) -> list[int]:
    """Index of the best option per prompt after subtracting each option position's mean score over all prompts.

    Batch calibration (Zhou et al., ICLR 2024): label-free and run-free, it removes a bias that favours one option on
    every record (the collapse to one label of a briefly trained adapter). It presumes option `j` means the same
    thing in every row (a closed label set, or the letter of a multiple-choice option) and every label present in
    the batch; it spreads the answers, so read it against a uniform guess, not only against the majority label.
    """
    import numpy as np

    widths = {len(row) for row in scores}
    if len(widths) != 1 or not scores or 0 in widths:
        raise ValueError(f"batch calibration needs the same number (>= 1) of options on every row, got {widths or 0}")
    matrix = np.asarray(scores, dtype=float)
    return [int(j) for j in (matrix - matrix.mean(axis=0)).argmax(axis=1)]


def task_options(task: str | TaskSpec, record: Mapping[str, str]) -> list[str]:
    """The allowed answers of one record: the task's label set, or the `(A) ...` option lines of its context."""
    spec = resolve_task(task)
    if spec.output_format == "option":
        options = parse_options(record.get("context") or "")
        if not options:
            raise ValueError(f"{spec.name}: record {record.get('key', '?')!r} has no '(A) ...' option lines")
        return [f"({letter}) {text}" for letter, text in options.items()]
    if spec.output_format == "label":
        if not spec.labels:
            raise ValueError(f"{spec.name}: the task has no closed label set to score")
        return list(spec.labels)
    raise ValueError(
        f"{spec.name}: option scoring needs a closed answer space (output_format 'label' or 'option'), got "
        f"{spec.output_format!r}; score it by generation (evaluate_task)"
    )


def scoreable(task: str | TaskSpec) -> bool:
    """Whether `evaluate_options` can score this task (a closed answer space)."""
    spec = resolve_task(task)
    return spec.output_format == "option" or (spec.output_format == "label" and bool(spec.labels))


def _answer_key(spec: TaskSpec, answer: str) -> str:
    """What counts as the class of an answer: the option letter for multiple choice, else the label itself."""
    if spec.output_format == "option":
        return answer.strip()[1:2] if answer.strip().startswith("(") else answer.strip()[:1]
    return answer


def label_report(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
    train_references: Sequence[str] | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy and macro-F1 with percentile-bootstrap intervals, what was predicted how often, and the baselines.

    The majority baseline always answers the most frequent label of `train_references` (what a user could do without
    any model; the test majority when no training labels are given), chance is `1 / len(labels)`. Macro-F1 averages
    over the labels present in `references`, as the packaged `classification` metric does.
    """
    import numpy as np

    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references) or not references:
        raise ValueError(
            f"Need as many predictions as references (>= 1), got {len(predictions)} and {len(references)}"
        )
    labels = list(dict.fromkeys(labels or sorted(set(references))))
    metric = load_metric("classification")

    def compute(p: Sequence[str], r: Sequence[str]) -> dict[str, float]:
        return metric.compute(predictions=list(p), references=list(r))

    point = compute(predictions, references)
    rng = np.random.default_rng(seed)
    index = np.arange(len(references))
    p_arr, r_arr = np.array(predictions, dtype=object), np.array(references, dtype=object)
    samples: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_resamples):
        pick = rng.choice(index, size=len(index), replace=True)
        for key, value in _fast_scores(p_arr[pick], r_arr[pick]).items():
            samples[key].append(value)
    intervals = {k: _percentile_interval(v, confidence) for k, v in samples.items()}
    majority = Counter(train_references or references).most_common(1)[0][0]
    majority_scores = compute([majority] * len(references), references)
    return {
        **point,
        "intervals": intervals,
        "confidence": confidence,
        "prediction_counts": dict(Counter(predictions).most_common()),
        "reference_counts": dict(Counter(references).most_common()),
        "baselines": {
            "majority": {"label": majority, **majority_scores},
            "chance": {"accuracy": 1.0 / len(labels)} if labels else {},
        },
        "n": len(references),
    }


def paired_difference(
    predictions_a: Sequence[str],
    predictions_b: Sequence[str],
    references: Sequence[str],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Model A minus model B on the same records: point difference and paired percentile-bootstrap interval.

    Resampling records (not each model separately) keeps the pairing, so the interval is much tighter than the
    difference of two unpaired intervals; an interval that excludes 0 is a difference the test set supports.
    """
    import numpy as np

    a, b, r = (np.array(list(x), dtype=object) for x in (predictions_a, predictions_b, references))
    if not (len(a) == len(b) == len(r) > 0):
        raise ValueError(f"Need equally long, non-empty lists; got {len(a)}, {len(b)} and {len(r)}")
    return paired_bootstrap(lambda pick: _fast_scores(a[pick], r[pick]), lambda pick: _fast_scores(b[pick], r[pick]),
                            len(r), n_resamples=n_resamples, confidence=confidence, seed=seed)  # fmt: skip


def paired_bootstrap(
    score_a: Callable[[Any], dict[str, float]],
    score_b: Callable[[Any], dict[str, float]],
    n: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """`score_a - score_b` per metric with a paired percentile-bootstrap interval over `n` records.

    `score_x(pick)` scores one model on the records at the index array `pick` (all records: `np.arange(n)`); both
    see the same resample, which keeps the pairing. Any metric works: label accuracy, or micro-F1 over pooled counts.
    """
    import numpy as np

    every = np.arange(n)
    point_a, point_b = score_a(every), score_b(every)
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[float]] = {k: [] for k in point_a}
    for _ in range(n_resamples):
        pick = rng.integers(0, n, size=n)
        sa, sb = score_a(pick), score_b(pick)
        for key in diffs:
            diffs[key].append(sa[key] - sb[key])
    return {
        key: {"difference": point_a[key] - point_b[key], "interval": _percentile_interval(v, confidence)}
        for key, v in diffs.items()
    }


def _fast_scores(predictions: Any, references: Any) -> dict[str, float]:
    """The packaged metric's accuracy and macro-F1, vectorised for the bootstrap (tested equal to it)."""
    import numpy as np

    correct = predictions == references
    f1s = []
    for label in np.unique(references):
        tp = float(np.sum(correct & (references == label)))
        fp = float(np.sum((predictions == label) & ~correct))
        fn = float(np.sum((references == label) & ~correct))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"accuracy": float(np.mean(correct)), "macro_f1": float(np.mean(f1s))}


def evaluate_options(
    model: Any,
    tokenizer: Any,
    task: str | TaskSpec,
    dataset: Any = None,
    *,
    limit: int | None = None,
    batch_size: int = 16,
    normalization: str = "sum",
    prompt_fn: Callable[[Mapping[str, str]], str] | None = None,
    options_fn: Callable[[Mapping[str, str]], list[str]] | None = None,
    progress: bool = False,
    n_resamples: int = 1000,
    use_cache: bool | None = None,
) -> dict[str, Any]:
    """Score a closed-answer task's test split by option log-likelihood; a `label_report` plus the raw scores.

    Args:
        dataset (`datasets.DatasetDict`, *optional*): the task's splits; defaults to `load_task(task)`. Its train
            split gives the majority-label baseline.
        normalization (`str`): `"sum"` (default) or `"mean"` picks the reported predictions; the report also
            gives the accuracy under the other one (`accuracy_<other>`).
        prompt_fn (*optional*): record -> prompt; defaults to the project's template (`format_prompt`). Pass e.g. a
            chat-template or few-shot prompt for a fair base-model baseline.
        options_fn (*optional*): record -> its allowed answers; defaults to `task_options` (the label set, or the
            `(A) ...` lines of a multiple-choice context). E.g. bare letters for data whose answers are `B`.
        use_cache (`bool`, *optional*): see `option_log_likelihoods`.
    """
    spec, dataset, test = load_test_split(task, dataset, limit)
    records = list(test)
    options = [(options_fn or (lambda r: task_options(spec, r)))(r) for r in records]
    prompts = [(prompt_fn or format_prompt)(r) for r in records]
    start = time.perf_counter()
    scores = option_log_likelihoods(model, tokenizer, prompts, options, batch_size=batch_size, progress=progress,
                                    use_cache=use_cache)  # fmt: skip
    seconds = time.perf_counter() - start
    picks = {norm: pick_options(scores, norm) for norm in NORMALIZATIONS}
    key = lambda answer: _answer_key(spec, answer)  # noqa: E731
    predictions = [key(opts[j]) for opts, j in zip(options, picks[normalization])]
    references = [key(r["output"]) for r in records]
    train_refs = [key(o) for o in dataset["train"]["output"]] if "train" in dataset else None
    labels = [key(o) for o in spec.labels] or None
    report = label_report(predictions, references, labels=labels, train_references=train_refs, n_resamples=n_resamples)
    for norm in NORMALIZATIONS:
        if norm != normalization:
            other = [key(opts[j]) for opts, j in zip(options, picks[norm])]
            report[f"accuracy_{norm}"] = sum(p == r for p, r in zip(other, references)) / len(references)
    if len({len(opts) for opts in options}) == 1:  # the same option positions on every record: calibration applies
        report["batch_calibrated"] = _calibrated_report(scores, options, references, normalization, key)
    return {
        "scoring": f"option_log_likelihood/{normalization}",
        "metrics": {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]},
        "report": report,
        "n": len(records),
        "seconds": seconds,
        "predictions": predictions,
        "references": references,
        "options": options,
        "option_scores": [[round(s, 4) for s, _ in row] for row in scores],
        "option_tokens": [[n for _, n in row] for row in scores],
    }


def _calibrated_report(scores, options, references, normalization: str, key: Callable[[str], str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and answer counts of the batch-calibrated picks (`batch_calibrate`), a secondary reading."""
    import numpy as np

    answers = [key(opts[j]) for opts, j in zip(options, batch_calibrate(_normalized(scores, normalization)))]
    metrics = _fast_scores(np.array(answers, dtype=object), np.array(references, dtype=object))
    return {**metrics, "prediction_counts": dict(Counter(answers).most_common())}


def bootstrap_mean_interval(values: Sequence[float], *, n_resamples: int = 1000, confidence: float = 0.95,
                            seed: int = 0) -> list[float]:  # fmt: skip
    """Percentile-bootstrap interval of a mean (per-record scores such as ROUGE-L or exact match)."""
    import numpy as np

    values = np.asarray(list(values), dtype=float)
    if values.size == 0 or not math.isfinite(values.sum()):
        raise ValueError("bootstrap_mean_interval needs a non-empty list of finite numbers")
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_resamples, values.size), replace=True).mean(1)
    return _percentile_interval(means, confidence)


def _percentile_interval(samples: Any, confidence: float) -> list[float]:
    """The central `confidence` interval of bootstrap samples (percentile method)."""
    import numpy as np

    alpha = (1 - confidence) / 2
    return [float(np.quantile(samples, alpha)), float(np.quantile(samples, 1 - alpha))]

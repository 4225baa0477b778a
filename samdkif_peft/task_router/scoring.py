"""Score one model variant on a user's test split and keep the result in `eval/<variant>.json` (a finished stage).

Label and multiple-choice tasks are scored twice: by option log-likelihood (the answer the model ranks highest
among the allowed ones: knowledge, not format) and by greedy generation (what a user sees). Generation tasks get
ROUGE-L, exact match and token F1 per record, so the report can give bootstrap intervals.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from ..utils import atomic_write_text


logger = logging.getLogger(__name__)

ROUTING_RECORDS = 64  # test prompts the routing heat-map averages over
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")


def evaluate_variant(out: Path, variant: str, spec, dataset, base: str, *, limit: int | None, progress: bool):
    """`eval/<variant>.json` for `variant` in ("base", "router", "task_lora"), computed once."""
    from .run import EVAL_DIR

    path = out / EVAL_DIR / f"{variant}.json"
    if path.is_file():
        return json.loads(path.read_text())
    model, tokenizer = _load(out, variant, base)
    logger.info("scoring %s on %s", variant, spec.name)
    start = time.perf_counter()
    result = score_model(model, tokenizer, spec, dataset, limit=limit, progress=progress)
    if variant == "router":
        result["routing"] = routing_matrix(model, tokenizer, dataset["test"], limit=limit)
    result["seconds"] = round(time.perf_counter() - start, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(str(path), json.dumps({"variant": variant, **result}, indent=1))
    return result


def _load(out: Path, variant: str, base: str):
    from peft import PeftModel

    from ..base_model import load_base_model
    from .run import TASK_LORA_DIR

    model, tokenizer = load_base_model(base)
    if variant == "router":
        model = PeftModel.from_pretrained(model, str(out))
    elif variant == "task_lora":
        model = PeftModel.from_pretrained(model, str(out / TASK_LORA_DIR))
    model.eval()
    return model, tokenizer


def score_model(model: Any, tokenizer: Any, spec, dataset, *, limit: int | None = None, progress: bool = False):
    """`{"generation": {...}, "options": {...} (closed answer spaces)}` on the first `limit` test records."""
    from ..evaluation.generation import evaluate_task, load_test_split
    from ..evaluation.likelihood import evaluate_options
    from ..evaluation.parsing import parse_prediction
    from ..evaluation.scoring import score_task

    _, _, test = load_test_split(spec, dataset, limit)
    result: dict[str, Any] = {}
    if spec.output_format in ("label", "option"):
        options_fn = _bare_letters if spec.output_format == "option" and _answers_are_letters(dataset) else None
        result["options"] = evaluate_options(model, tokenizer, spec, dataset, limit=limit, options_fn=options_fn,
                                             progress=progress)  # fmt: skip
    generation = evaluate_task(model, tokenizer, spec, dataset, limit=limit, progress=progress)
    contexts = test["context"]
    parsed = [parse_prediction(spec, p, c) for p, c in zip(generation["predictions"], contexts)]
    references = [parse_prediction(spec, r, c) for r, c in zip(test["output"], contexts)]
    generation["parsed"], generation["references"] = parsed, references
    if spec.output_format == "text":  # per-record scores, for intervals and for reading the worst answers
        generation["per_record"] = [
            score_task(spec, [p], [r]) for p, r in zip(generation["predictions"], test["output"])
        ]
    result["generation"] = generation
    return result


def _answers_are_letters(dataset) -> bool:
    """Multiple-choice data answered with a bare letter (`B`) rather than `(B) text`."""
    return all(len(o.strip().strip("()")) == 1 for o in dataset["train"]["output"])


def _bare_letters(record) -> list[str]:
    from ..evaluation.parsing import parse_options

    return list(parse_options(record["context"]))


def routing_matrix(model: Any, tokenizer: Any, test, *, limit: int | None = None, batch_size: int = 8):
    """Mean routing weight per layer and skill over up to `ROUTING_RECORDS` test prompts (the report's heat-map).

    `mean_routing_weights` gives each adapted module's mean over the prompts; a layer's row averages its modules.
    """
    import torch

    from ..data.templates import format_prompt

    records = list(test.select(range(min(len(test), limit or ROUTING_RECORDS, ROUTING_RECORDS))))
    weights = model.base_model.mean_routing_weights(tokenizer, [format_prompt(r) for r in records],
                                                    batch_size=batch_size)  # fmt: skip
    rows: dict[int, list[torch.Tensor]] = {}
    for key, mean in weights.items():
        rows.setdefault(_layer_index(key), []).append(mean)
    layers = sorted(rows)
    return {
        "skills": list(model.base_model._routing_states[model.active_adapter].skill_names),
        "layers": layers,
        "weights": [[round(float(v), 5) for v in torch.stack(rows[layer]).mean(0).tolist()] for layer in layers],
        "records": len(records),
    }


def _layer_index(module_key: str) -> int:
    match = _LAYER.search(module_key)
    return int(match.group(1)) if match else -1

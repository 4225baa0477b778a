"""`samdkif router info ROUTER [--verify]`: what a router mixes, pinned to what, and whether its skills still match.

Reads only `adapter_config.json` (and, with `--verify`, the skill weights): no base model is loaded, so it is a quick
check before a long evaluation or after copying a router repo to an air-gapped site.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_cli_parser(parser: argparse.ArgumentParser) -> None:
    """Fill in the `samdkif router` parser (created by `samdkif_cli`, which holds its help line)."""
    router = parser
    router_sub = router.add_subparsers(dest="router_command", required=True)
    info = router_sub.add_parser("info", help="show a router's settings and pinned skills (local dir or Hub repo)")
    info.add_argument("router", help="router directory or Hub repo id")
    info.add_argument("--revision", default=None, help="branch, tag or commit of a Hub router")
    info.add_argument("--subfolder", default=None, help="subfolder of the router inside the repo")
    info.add_argument("--verify", action="store_true", help="fetch every skill and check it against its pinned sha256")
    info.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    info.set_defaults(func=run_info)
    export = router_sub.add_parser("export", help="write a router as one plain peft LoRA (servers, vLLM, no plugin)")
    export.add_argument("router", help="router directory or Hub repo id")
    export.add_argument("--out", required=True, help="folder for the LoRA adapter")
    export.add_argument("--base-model", default=None, help="base model (default: the router's, else prepared SmolLM2)")
    export.add_argument("--prompts", default=None, help="task records (JSONL/CSV/Parquet) whose gates are averaged; "
                        "needed unless the router is static")  # fmt: skip
    export.add_argument("--limit", type=int, default=256, help="use the first N prompts (default 256)")
    export.add_argument("--min-weight", type=float, default=0.0, help="leave out each module's skills weighted below "
                        "this (a smaller LoRA; the strongest skill always stays)")  # fmt: skip
    export.set_defaults(func=run_export)
    from ..task_router.cli import add_train_parser

    add_train_parser(router_sub)


def run_info(args: argparse.Namespace) -> int:
    """Exit status 0; 1 when the router cannot be read or, with `--verify`, a skill is missing or changed."""
    from peft import PeftConfig

    from ..skills.bank import resolve_pinned_skill
    from .config import SkillRouterConfig

    try:
        config = PeftConfig.from_pretrained(args.router, revision=args.revision, subfolder=args.subfolder)
    except (OSError, ValueError) as err:  # missing dir/repo, torn save
        print(f"samdkif router info: error: {err}", file=sys.stderr)
        return 1
    if not isinstance(config, SkillRouterConfig):
        kind = getattr(config.peft_type, "value", config.peft_type)
        print(f"samdkif router info: error: {args.router!r} is a {kind} adapter, not a skill router", file=sys.stderr)
        return 1
    skills = {}
    for name in config.skill_names:
        lock = config.skill_lock.get(name, {})
        row = {"reference": config.skills[name], **{k: lock.get(k) for k in ("revision", "sha256", "peft_type")}}
        row["bundled"] = bool(lock.get("bundled"))
        if args.verify and not lock.get("sha256"):
            row["verified"], row["error"] = False, "not pinned: save the router through the model to pin it"
        elif args.verify:
            try:
                row["verified"] = resolve_pinned_skill(config, name).sha256 == lock.get("sha256")
            except (OSError, ValueError) as err:
                row["verified"], row["error"] = False, str(err)
        skills[name] = row
    summary = {
        "router": config.router,
        "top_k": config.top_k,
        "temperature": config.temperature,
        "null_expert": config.null_expert,
        "gate_scope": config.gate_scope,
        "task_rank": config.task_rank,
        "base_model_name_or_path": config.base_model_name_or_path,
        "target_modules": sorted(config.target_modules or []),
        "skills": skills,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(args.router, summary, args.verify)
    return 0 if not args.verify or all(s["verified"] for s in skills.values()) else 1


def _print_table(router: str, summary: dict, verify: bool) -> None:
    settings = ("top_k", "temperature", "null_expert", "gate_scope", "task_rank")
    options = ", ".join(f"{k}={summary[k]}" for k in settings)
    print(f"{router}: {summary['router']} router over {len(summary['skills'])} skills ({options})")
    print(f"base model: {summary['base_model_name_or_path']}; modules: {', '.join(summary['target_modules'])}")
    header = ["skill", "reference", "revision", "sha256", "type"] + (["check"] if verify else [])
    rows = []
    for name, s in summary["skills"].items():
        revision = "bundled" if s["bundled"] else (s["revision"] or "local")[:12]
        row = [name, s["reference"], revision, (s["sha256"] or "-")[:12], s["peft_type"] or "-"]
        if verify:
            row.append("ok" if s["verified"] else f"FAILED: {s.get('error', 'sha256 differs')}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


def run_export(args: argparse.Namespace) -> int:
    """Exit status 0 with the exported folder printed; 1 with one line on bad input."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..base_model import prepare_base_model
    from .export import export_lora

    try:
        config = PeftConfig.from_pretrained(args.router)
        prompts = _read_prompts(args.prompts, args.limit) if args.prompts else None
        base = args.base_model or config.base_model_name_or_path or str(prepare_base_model())
        tokenizer = AutoTokenizer.from_pretrained(base) if prompts else None
        if tokenizer is not None and tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), args.router)
        summary = export_lora(model, args.out, prompts=prompts, tokenizer=tokenizer, min_weight=args.min_weight)
    except (OSError, ValueError) as err:
        print(f"samdkif router export: error: {err}", file=sys.stderr)
        return 1
    how = f"gates averaged over {len(prompts)} prompts (approximate)" if prompts else "exact"
    left_out = max(summary["dropped_weight"].values())
    if left_out:
        how += f", skills below {args.min_weight} left out (up to {left_out:.3f} of a module's weight)"
    rank = max(summary["rank"].values())
    print(f"{summary['output_dir']}: LoRA over {summary['modules']} modules, rank <= {rank}, {how}; load it with "
          "plain peft")  # fmt: skip
    return 0


def _read_prompts(path: str, limit: int) -> list[str]:
    from ..data.templates import format_prompt
    from ..task_router.inputs import read_split

    records = read_split(path, "prompts")
    return [format_prompt(r) for r in records.select(range(min(limit, len(records))))]

"""Speed of mixing n skills: SKILL_ROUTER vs peft's ways of combining LoRAs, as ratios to the base model.

Measured on a randomly initialised model with SmolLM2-135M's exact shape (speed depends on shapes, not weights), with
n random LoRA r8 skills on q_proj/v_proj, bf16 on CPU. Adapter weights are float32 (peft's `autocast_adapter_dtype`
default) for every method, plus one SKILL_ROUTER row with bf16 factors (`autocast_adapter_dtype=False`). Every
number is a median over repeats, and every ratio is against the base model measured in the same run (machines are
noisy; compare ratios, not milliseconds).

    python benchmarks/bench_router.py                 # SmolLM2 shape, 12 skills (~5 min on 2 cores)
    python benchmarks/bench_router.py --preset tiny   # seconds; for a smoke run

Writes benchmarks/results/router_speed.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings

import torch
from peft import LoraConfig, PeftModel, XLoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM, logging

import samdkif_peft  # noqa: F401
from samdkif_peft import SkillRouterConfig


PRESETS = {
    "smollm2": dict(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
    ),  # fmt: skip
    "tiny": dict(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    ),  # fmt: skip
}


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired(reference, fn, repeats: int, warmup: int = 1) -> tuple[float, float, float]:
    """Median seconds of `fn`, of `reference`, and of their per-pair ratio.

    Each repeat times the reference right before `fn`, so a machine that speeds up or slows down over the minutes a
    benchmark takes (shared CPUs do) moves both and cancels in the ratio; timing the reference once at the start did
    not (ratios below 1 for models doing strictly more work).
    """
    for _ in range(warmup):
        reference()
        fn()
    times, refs = [], []
    for _ in range(repeats):
        refs.append(median_seconds(reference, 1, warmup=0))
        times.append(median_seconds(fn, 1, warmup=0))
    ratio = statistics.median(t / r for t, r in zip(times, refs))
    return statistics.median(times), statistics.median(refs), ratio


def build_base(preset: str, base_dir: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**PRESETS[preset], pad_token_id=0)).to(dtype).save_pretrained(base_dir)


def load(base_dir: str, dtype: torch.dtype, use_cache: bool = True) -> LlamaForCausalLM:
    model = LlamaForCausalLM.from_pretrained(base_dir, dtype=dtype)
    model.config.use_cache = use_cache
    return model.eval()


def make_skills(base_dir: str, root: str, n: int, dtype: torch.dtype) -> dict[str, str]:
    skills = {}
    for i in range(n):
        torch.manual_seed(100 + i)
        path = os.path.join(root, f"skill{i}")
        config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        get_peft_model(load(base_dir, dtype), config).save_pretrained(path)
        skills[f"skill{chr(ord('a') + i)}"] = path
    return skills


def variants(base_dir: str, skills: dict[str, str], dtype: torch.dtype):
    """name -> (builder, supports_kv_cache)."""
    paths = list(skills.values())

    def peft_single():
        return PeftModel.from_pretrained(load(base_dir, dtype), paths[0]).eval()

    def peft_all_active():
        model = PeftModel.from_pretrained(load(base_dir, dtype), paths[0], adapter_name="a0")
        for i, path in enumerate(paths[1:], 1):
            model.load_adapter(path, adapter_name=f"a{i}")
        model.base_model.set_adapter([f"a{i}" for i in range(len(paths))])
        return model.eval()

    def peft_weighted_cat():
        model = PeftModel.from_pretrained(load(base_dir, dtype), paths[0], adapter_name="a0")
        for i, path in enumerate(paths[1:], 1):
            model.load_adapter(path, adapter_name=f"a{i}")
        names = [f"a{i}" for i in range(len(paths))]
        model.add_weighted_adapter(names, [1 / len(paths)] * len(paths), "mix", combination_type="cat")
        model.set_adapter("mix")
        return model.eval()

    def xlora():
        config = XLoraConfig(
            task_type="CAUSAL_LM", hidden_size=PRESET_HIDDEN[0], adapters={str(i): p for i, p in enumerate(paths)}
        )
        return get_peft_model(load(base_dir, dtype, use_cache=False), config).eval()

    def ours(router, autocast=True):
        def build():
            config = SkillRouterConfig(skills=skills, router=router, task_type="CAUSAL_LM")
            return get_peft_model(load(base_dir, dtype), config, autocast_adapter_dtype=autocast).eval()

        return build

    return {
        "peft 1 LoRA": (peft_single, True),
        f"peft {len(paths)} adapters active": (peft_all_active, True),
        f"peft add_weighted_adapter(cat) of {len(paths)}": (peft_weighted_cat, True),
        f"X-LoRA over {len(paths)}": (xlora, False),
        f"SKILL_ROUTER static, {len(paths)} skills": (ours("static"), True),
        f"SKILL_ROUTER sequence, {len(paths)} skills": (ours("sequence"), True),
        f"SKILL_ROUTER token, {len(paths)} skills": (ours("token"), True),
        f"SKILL_ROUTER token, {len(paths)} skills, bf16 factors": (ours("token", autocast=False), True),
    }


PRESET_HIDDEN = [0]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return f"{name} ({', '.join(f for f in ('amx_bf16', 'avx512_bf16') if f in flags) or 'no bf16 units'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="smollm2")
    parser.add_argument("--skills", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/router_speed.json")
    args = parser.parse_args()
    logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16
    PRESET_HIDDEN[0] = PRESETS[args.preset]["hidden_size"]
    vocab = PRESETS[args.preset]["vocab_size"]

    with tempfile.TemporaryDirectory() as root:
        base_dir = os.path.join(root, "base")
        build_base(args.preset, base_dir, dtype)
        skills = make_skills(base_dir, root, args.skills, dtype)
        gen = torch.Generator().manual_seed(0)
        batch = torch.randint(3, vocab, (args.batch, args.seq), generator=gen)
        prompt = torch.randint(3, vocab, (1, 32), generator=gen)

        def forward(model):
            with torch.no_grad():
                model(input_ids=batch, use_cache=False)

        def train_step(model):
            model.train()
            model(input_ids=batch, labels=batch, use_cache=False).loss.backward()
            model.zero_grad(set_to_none=True)
            model.eval()

        def decode(model, use_cache=True):
            n = args.new_tokens
            with torch.no_grad():
                model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                               min_new_tokens=n, do_sample=False, use_cache=use_cache, pad_token_id=0)  # fmt: skip

        base = load(base_dir, dtype)
        lora = get_peft_model(load(base_dir, dtype), LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
        dec_repeats = max(1, args.repeats // 3)
        rows = {"base model": {"forward_s": median_seconds(lambda: forward(base), args.repeats)}}
        rows["base model"]["decode_ms_per_token"] = 1000 * median_seconds(lambda: decode(base), 1) / args.new_tokens
        # Train-step reference: one trainable LoRA r8 on q,v (what a router step is compared with).
        rows["base model"]["train_step_s (1 LoRA r8 trainable)"] = median_seconds(lambda: train_step(lora), 1)
        rows["base model"].update(forward_ratio=1.0, decode_ratio=1.0)
        for name, (build, cache) in variants(base_dir, skills, dtype).items():
            model = build()
            fwd, _, fwd_ratio = paired(lambda: forward(base), lambda m=model: forward(m), args.repeats)
            dec, _, dec_ratio = paired(lambda: decode(base), lambda m=model, c=cache: decode(m, c), dec_repeats)
            row = {"forward_s": fwd, "forward_ratio": fwd_ratio}
            row.update(decode_ms_per_token=1000 * dec / args.new_tokens, decode_ratio=dec_ratio)
            if name.startswith(("X-LoRA", "SKILL_ROUTER")):
                step, _, step_ratio = paired(lambda: train_step(lora), lambda m=model: train_step(m), 1)
                row.update(train_step_s=step, train_ratio_vs_1_lora=step_ratio)
            rows[name] = row
            print(f"{name}: {row}", flush=True)
            del model

        # Cost as skills are added: the fused layer vs peft's loop over active adapters.
        scaling, scaling_ratio = {}, {}
        for n in sorted({1, max(1, args.skills // 3), args.skills}):
            subset = dict(list(skills.items())[:n])
            ours = get_peft_model(load(base_dir, dtype), SkillRouterConfig(skills=subset, router="token",
                                                                            task_type="CAUSAL_LM"))  # fmt: skip
            peft_all = PeftModel.from_pretrained(load(base_dir, dtype), list(subset.values())[0], adapter_name="a0")
            for i, path in enumerate(list(subset.values())[1:], 1):
                peft_all.load_adapter(path, adapter_name=f"a{i}")
            peft_all.base_model.set_adapter([f"a{i}" for i in range(n)])
            peft_all.eval()
            scaling[n], scaling_ratio[n] = {}, {}
            for label, model in (("SKILL_ROUTER token", ours), ("peft adapters active", peft_all)):
                t, _, r = paired(lambda: forward(base), lambda m=model: forward(m), args.repeats)
                scaling[n][label], scaling_ratio[n][label] = t, r
            print(f"scaling n={n}: {scaling_ratio[n]}", flush=True)

    result = {
        "preset": args.preset,
        "shape": PRESETS[args.preset],
        "dtype": str(dtype),
        "batch": [args.batch, args.seq],
        "skills": args.skills,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "cpu": _cpu_model(),  # bf16 speed, and so every ratio to a bf16 base, depends on it (AMX vs AVX-512)
        "torch": torch.__version__,
        "rows": rows,
        "scaling_forward_s": scaling,
        "scaling_forward_ratio": scaling_ratio,
        "method": "ratios are medians of per-repeat ratios, each variant timed right after the base model",
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)

    print(f"\n{args.preset} shape, bf16, {args.threads} threads, forward batch {args.batch}x{args.seq}, "
          f"decode batch 1, {args.new_tokens} new tokens")  # fmt: skip
    print("| variant | forward (x base) | decode ms/token (x base) | train step (x 1 LoRA) |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        train = f"{row['train_ratio_vs_1_lora']:.2f}" if "train_ratio_vs_1_lora" in row else "-"
        if name == "base model":
            train = f"1 LoRA r8: {row['train_step_s (1 LoRA r8 trainable)']:.2f} s"
        decode = f"{row['decode_ms_per_token']:.1f} ({row['decode_ratio']:.2f})"
        print(f"| {name} | {row['forward_ratio']:.2f} | {decode} | {train} |")
    print("\n| skills | SKILL_ROUTER token (x base) | peft adapters active (x base) |")
    print("|---|---|---|")
    for n, s in result["scaling_forward_ratio"].items():
        print(f"| {n} | {s['SKILL_ROUTER token']:.2f} | {s['peft adapters active']:.2f} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

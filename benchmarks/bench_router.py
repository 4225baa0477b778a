"""Speed of mixing n skills: SKILL_ROUTER vs peft's ways of combining LoRAs, as ratios to the base model.

Measured on a randomly initialised model with SmolLM2-135M's exact shape (speed depends on shapes, not weights), with
n random LoRA skills on q_proj/v_proj, bf16 on CPU. Adapter weights are float32 (peft's `autocast_adapter_dtype`
default) for every method, plus SKILL_ROUTER rows with bf16 factors (`autocast_adapter_dtype=False`; what that does
to real outputs: `benchmarks/precision_router.py`). Forward at batch x seq for each --seq; decode: batch 1, a
64-token prompt, then greedy tokens with the KV cache, timed per token. Beside every ratio: the FLOP floor of the
ranks it multiplies. Every number is a median over repeats, and every ratio is against the base model timed right
before it (machines are noisy; compare ratios, not milliseconds). Then the default router from 4 to 48 skills, and
at ranks 4 / 8 / 16.

    python benchmarks/bench_router.py                 # SmolLM2 shape, 12 skills (~15 min on 2 quiet cores)
    python benchmarks/bench_router.py --preset tiny   # a smoke run
    python benchmarks/bench_router.py --device cuda --batch 32 --seq 512 --compile \
        --out benchmarks/results/router_speed_gpu.json  # the GPU table (benchmarks/device_bench.sh runs it)

`--compile` adds rows where the base model and the variant are both wrapped in `torch.compile` (the ratio is to the
compiled base). On CUDA every timing synchronises the device; the training peak memory is the device's
(`torch.cuda.max_memory_allocated`), not the process's RSS.

Writes benchmarks/results/router_speed.json and prints the markdown tables (scripts/update_readme.py renders them).
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
from samdkif_peft.utils import cpu_description


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


DEVICE = [torch.device("cpu")]  # set by --device; every model and batch is moved there


def sync() -> None:
    """Wait for the device's queued work, so a timer reads work done, not work launched (a no-op on CPU)."""
    if DEVICE[0].type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired(reference, fn, repeats: int, warmup: int = 1, self_timed: bool = False) -> tuple[float, float, float]:
    """Median seconds of `fn`, of `reference`, and of their per-pair ratio.

    Each repeat times the reference right before `fn`, so a machine that speeds up or slows down over the minutes a
    benchmark takes (shared CPUs do) moves both and cancels in the ratio; timing the reference once at the start did
    not (ratios below 1 for models doing strictly more work). `self_timed`: both return the seconds to count (a
    decode loop that leaves its prompt's forward out).
    """
    for _ in range(warmup):
        reference()
        fn()
    clock = (lambda f: f()) if self_timed else (lambda f: median_seconds(f, 1, warmup=0))
    times, refs = [], []
    for _ in range(repeats):
        refs.append(clock(reference))
        times.append(clock(fn))
    ratio = statistics.median(t / r for t, r in zip(times, refs))
    return statistics.median(times), statistics.median(refs), ratio


def build_base(preset: str, base_dir: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**PRESETS[preset], pad_token_id=0)).to(dtype).save_pretrained(base_dir)


def load(base_dir: str, dtype: torch.dtype, use_cache: bool = True) -> LlamaForCausalLM:
    # use_kernels=False: on CUDA transformers would otherwise fetch Hub kernels, which fails offline
    model = LlamaForCausalLM.from_pretrained(base_dir, dtype=dtype, use_kernels=False).to(DEVICE[0])
    model.config.use_cache = use_cache
    return model.eval()


def compiled(build):
    """A builder of the same model with its forward wrapped in torch.compile (the PeftModel and its tuner kept)."""

    def build_compiled():
        model = build()
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        inner.forward = torch.compile(inner.forward)
        return model

    return build_compiled


def make_skills(base_dir: str, root: str, n: int, dtype: torch.dtype, rank: int = 8) -> dict[str, str]:
    skills = {}
    for i in range(n):
        torch.manual_seed(100 + i)
        path = os.path.join(root, f"r{rank}", f"skill{i}")
        config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS, init_lora_weights=False)
        get_peft_model(load(base_dir, dtype), config).save_pretrained(path)
        skills[f"skill{i:02d}"] = path
    return skills


def flop_floor(shape: dict, total_rank: int) -> float:
    """Extra FLOPs per token of `total_rank` LoRA ranks on q_proj and v_proj, over the base model's linear FLOPs
    (every projection and the LM head; attention scores add a little to the base, so this is an upper bound)."""
    h, inter, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = h // shape["num_attention_heads"] * shape["num_key_value_heads"]
    base = layers * (2 * h * h + 2 * h * kv + 3 * h * inter) + h * shape["vocab_size"]
    extra = layers * total_rank * ((h + h) + (h + kv))  # A and B of q_proj (h -> h) and v_proj (h -> kv)
    return extra / base


def pin_gates(model, seed: int) -> None:
    """Sequence-router gates that ignore the prompt (zero weights, random biases): every prompt gets the same skills
    per layer, like a router trained on one task."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "skill_router_gate" in name:
                param.copy_(torch.randn(param.shape, generator=gen) if name.endswith("bias") else 0 * param)


def variants(base_dir: str, skills: dict[str, str], dtype: torch.dtype):
    """name -> (builder, supports_kv_cache, total LoRA rank it multiplies per token)."""
    paths = list(skills.values())
    n = len(paths)

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

    def ours(router, autocast=True, merged=False, task_rank=0):
        def build():
            config = SkillRouterConfig(skills=skills, router=router, task_type="CAUSAL_LM", task_rank=task_rank)
            model = get_peft_model(load(base_dir, dtype), config, autocast_adapter_dtype=autocast).eval()
            return model.merge_and_unload() if merged else model

        return build

    return {
        "peft 1 LoRA": (peft_single, True, 8),
        f"peft {n} adapters active": (peft_all_active, True, 8 * n),
        f"peft add_weighted_adapter(cat) of {n}": (peft_weighted_cat, True, 8 * n),
        f"X-LoRA over {n} (no KV cache)": (xlora, False, 8 * n),
        f"SKILL_ROUTER static, {n} skills": (ours("static"), True, 8 * n),
        f"SKILL_ROUTER static, {n} skills, merge_and_unload()": (ours("static", merged=True), True, 0),
        f"SKILL_ROUTER sequence, {n} skills": (ours("sequence"), True, 8 * n),
        f"SKILL_ROUTER token, {n} skills": (ours("token"), True, 8 * n),
        f"SKILL_ROUTER hybrid (sequence + task LoRA r8), {n} skills": (ours("sequence", task_rank=8), True, 8 * n + 8),
        f"SKILL_ROUTER static, {n} skills, bf16 factors": (ours("static", autocast=False), True, 8 * n),
        f"SKILL_ROUTER sequence, {n} skills, bf16 factors": (ours("sequence", autocast=False), True, 8 * n),
        f"SKILL_ROUTER token, {n} skills, bf16 factors": (ours("token", autocast=False), True, 8 * n),
    }


TARGETS = ["q_proj", "v_proj"]
# the variants that also get a torch.compile row under --compile (X-LoRA's per-token recomputation is not compiled)
COMPILED = ("peft 1 LoRA", "SKILL_ROUTER static", "SKILL_ROUTER sequence", "SKILL_ROUTER token", "SKILL_ROUTER hybrid")


def _train_peak_rss(base_dir: str, skills: dict[str, str] | None, batch: torch.Tensor, threads: int, queue) -> None:
    """In a fresh process: peak resident memory (MiB) of loading the model and taking two training steps, with a
    single trainable LoRA r8 (skills None) or the default router over `skills`."""
    torch.set_num_threads(threads)
    logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    two_training_steps(base_dir, skills, batch)
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent at fork, so a spawned child would
    # report the (larger) benchmark process's footprint; VmHWM belongs to the child's own address space.
    with open("/proc/self/status") as f:
        peak_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    queue.put(peak_kib / 1024)


def two_training_steps(base_dir: str, skills: dict[str, str] | None, batch: torch.Tensor) -> None:
    """Load a single trainable LoRA r8 (skills None) or the default router over `skills` and take two AdamW steps:
    the work whose peak memory `train_memory` reports."""
    if skills is None:
        model = get_peft_model(load(base_dir, torch.bfloat16), LoraConfig(r=8, target_modules=TARGETS))
    else:
        model = get_peft_model(load(base_dir, torch.bfloat16), SkillRouterConfig(skills=skills, task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for _ in range(2):
        model(input_ids=batch, labels=batch, use_cache=False).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def train_memory(base_dir: str, skills: dict[str, str], batch: torch.Tensor, threads: int) -> dict[str, float]:
    measure = peak_cuda if DEVICE[0].type == "cuda" else peak_rss
    lora, router = measure(base_dir, None, batch, threads), measure(base_dir, skills, batch, threads)
    unit = "peak CUDA MiB" if DEVICE[0].type == "cuda" else "peak RSS MiB"
    return {f"1 LoRA r8, {unit}": lora, f"default router, {unit}": router, "ratio": router / lora}


def peak_cuda(base_dir: str, skills: dict[str, str] | None, batch: torch.Tensor, threads: int) -> float:
    """Peak device memory (MiB) of loading the model and two training steps, as `_train_peak_rss` on CPU."""
    import gc

    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    two_training_steps(base_dir, skills, batch)
    return (torch.cuda.max_memory_allocated() - start) / 2**20


def peak_rss(base_dir: str, skills: dict[str, str] | None, batch: torch.Tensor, threads: int) -> float:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_train_peak_rss, args=(base_dir, skills, batch, threads, queue))
    process.start()
    value = queue.get()
    process.join()
    return value


PRESET_HIDDEN = [0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="smollm2")
    parser.add_argument("--skills", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, nargs="+", default=[128, 256], help="forward lengths (batch x seq)")
    parser.add_argument("--prompt", type=int, default=64, help="decode: prompt length before the timed tokens")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--scaling", type=int, nargs="*", default=[4, 12, 24, 48], help="skill counts")
    parser.add_argument("--ranks", type=int, nargs="*", default=[4, 8, 16], help="skill ranks, at --skills skills")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/router_speed.json")
    parser.add_argument("--memory-only", action="store_true", help="measure only the training peak memory and "
                        "update it in an existing --out (a few minutes)")  # fmt: skip
    parser.add_argument("--scaling-only", action="store_true", help="measure only the skill-count and rank tables "
                        "and update them in an existing --out")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="where the models run: cpu, or cuda on a GPU machine")
    parser.add_argument("--compile", action="store_true", help="add rows with the base model and each variant "
                        "wrapped in torch.compile (ratios to the compiled base)")  # fmt: skip
    parser.add_argument("--only", nargs="+", default=None, metavar="TEXT", help="time only the variants whose "
                        "name contains one of these (a short run: no training memory; the skill-count and rank tables "
                        "follow --scaling and --ranks, which may be left empty)")  # fmt: skip
    args = parser.parse_args()
    logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    DEVICE[0] = torch.device(args.device)
    if DEVICE[0].type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch; run it on the GPU machine or drop --device")
    dtype = torch.bfloat16
    shape = PRESETS[args.preset]
    PRESET_HIDDEN[0] = shape["hidden_size"]
    vocab = shape["vocab_size"]

    if args.memory_only:
        with tempfile.TemporaryDirectory() as root:
            base_dir = os.path.join(root, "base")
            build_base(args.preset, base_dir, dtype)
            skills = make_skills(base_dir, root, args.skills, dtype)
            batch = torch.randint(3, vocab, (args.batch, args.seq[0]), generator=torch.Generator().manual_seed(0))
            memory = train_memory(base_dir, skills, batch.to(DEVICE[0]), args.threads)
        result = json.loads(open(args.out).read())
        result["train_memory"] = memory
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(memory)
        return

    with tempfile.TemporaryDirectory() as root:
        base_dir = os.path.join(root, "base")
        build_base(args.preset, base_dir, dtype)
        skills = make_skills(base_dir, root, max([args.skills, *args.scaling]), dtype)
        main_skills = dict(list(skills.items())[: args.skills])
        gen = torch.Generator().manual_seed(0)
        batches = {seq: torch.randint(3, vocab, (args.batch, seq), generator=gen).to(DEVICE[0]) for seq in args.seq}
        prompt = torch.randint(3, vocab, (1, args.prompt), generator=gen).to(DEVICE[0])

        def forward(model, seq=args.seq[0]):
            with torch.no_grad():
                model(input_ids=batches[seq], use_cache=False)

        def train_step(model):
            batch = batches[args.seq[0]]
            model.train()
            model(input_ids=batch, labels=batch, use_cache=False).loss.backward()
            model.zero_grad(set_to_none=True)
            model.eval()

        def decode(model, use_cache=True):
            """Seconds per greedy token after the prompt (the prompt's forward is not timed). Without a KV cache
            (X-LoRA) every step runs the whole sequence, as its generate() does."""
            with torch.no_grad():
                out = model(input_ids=prompt, use_cache=use_cache)
                ids, cache = prompt, out.past_key_values
                tok = out.logits[:, -1:].argmax(-1)
                sync()
                start = time.perf_counter()
                for _ in range(args.new_tokens):
                    if use_cache:
                        out = model(input_ids=tok, past_key_values=cache, use_cache=True)
                        cache = out.past_key_values
                    else:
                        ids = torch.cat([ids, tok], dim=1)
                        out = model(input_ids=ids, use_cache=False)
                    tok = out.logits[:, -1:].argmax(-1)
                sync()
                return (time.perf_counter() - start) / args.new_tokens

        def paired_decode(model, cache, repeats, reference=None):
            reference = base if reference is None else reference
            return paired(lambda: decode(reference), lambda: decode(model, cache), repeats, self_timed=True)

        base = load(base_dir, dtype)
        lora = get_peft_model(load(base_dir, dtype), LoraConfig(r=8, target_modules=TARGETS))
        dec_repeats = max(3, args.repeats)
        rows = {"base model": {"forward_s": {str(seq): median_seconds(lambda s=seq: forward(base, s), args.repeats)
                                              for seq in args.seq}}}  # fmt: skip
        rows["base model"]["decode_ms_per_token"] = 1000 * statistics.median(decode(base) for _ in range(3))
        # Train-step reference: one trainable LoRA r8 on q,v (what a router step is compared with).
        rows["base model"]["train_step_s (1 LoRA r8 trainable)"] = median_seconds(lambda: train_step(lora), 3)
        chosen = {} if args.scaling_only else variants(base_dir, main_skills, dtype)
        base_compiled = None
        if args.compile and not args.scaling_only:
            # Compiled rows are timed against the compiled base, and the compiled base against the eager one.
            base_compiled = compiled(lambda: load(base_dir, dtype))()
            chosen = {"base model, torch.compile": (lambda: base_compiled, True, 0), **chosen,
                      **{f"{name}, torch.compile": (compiled(build), cache, rank)
                         for name, (build, cache, rank) in chosen.items()
                         if name.startswith(COMPILED) and "merge" not in name and "bf16" not in name}}  # fmt: skip
        if args.only:
            chosen = {name: entry for name, entry in chosen.items() if any(text in name for text in args.only)}
        for name, (build, cache, rank) in chosen.items():
            model = build()
            reference = base_compiled if name.endswith(", torch.compile") and not name.startswith("base") else base
            row = {"flop_floor": flop_floor(shape, rank), "forward_s": {}, "forward_ratio": {}}
            for seq in args.seq:
                fwd, _, ratio = paired(lambda s=seq, r=reference: forward(r, s), lambda m=model, s=seq: forward(m, s),
                                       args.repeats)  # fmt: skip
                row["forward_s"][str(seq)], row["forward_ratio"][str(seq)] = fwd, ratio
            dec, _, dec_ratio = paired_decode(model, cache, dec_repeats, reference)
            row.update(decode_ms_per_token=1000 * dec, decode_ratio=dec_ratio)
            if name.startswith(("X-LoRA", "SKILL_ROUTER")) and "merge" not in name and "compile" not in name:
                step, _, step_ratio = paired(lambda: train_step(lora), lambda m=model: train_step(m), 3)
                row.update(train_step_s=step, train_ratio_vs_1_lora=step_ratio)
            rows[name] = row
            print(f"{name}: {row}", flush=True)
            del model

        short = args.scaling_only or args.only
        memory = None if short else train_memory(base_dir, main_skills, batches[args.seq[0]], args.threads)
        print(f"training peak RSS: {memory}", flush=True)

        # Cost as skills are added, and as their rank grows: the default (sequence) router vs peft's loop over
        # active adapters (the latter up to --skills skills: it grows linearly and takes long beyond).
        scaling = {}
        for n in args.scaling:
            subset = dict(list(skills.items())[:n])
            config = SkillRouterConfig(skills=subset, task_type="CAUSAL_LM")
            ours = get_peft_model(load(base_dir, dtype), config).eval()
            entry = {"flop_floor": flop_floor(shape, 8 * n)}
            entry["forward_ratio"] = paired(lambda: forward(base), lambda m=ours: forward(m), args.repeats)[2]
            entry["decode_ratio"] = paired_decode(ours, True, dec_repeats)[2]
            # top_k=2 with gates that pick the same two skills per layer for every prompt (as a router trained on
            # one task does): the unused skills' rank slots leave the matmuls, so the floor is two skills'
            top = get_peft_model(load(base_dir, dtype), SkillRouterConfig(skills=subset, task_type="CAUSAL_LM",
                                                                          top_k=2)).eval()  # fmt: skip
            pin_gates(top, seed=n)
            entry["top2_flop_floor"] = flop_floor(shape, 8 * min(n, 2))
            entry["top2_forward_ratio"] = paired(lambda: forward(base), lambda m=top: forward(m), args.repeats)[2]
            entry["top2_decode_ratio"] = paired_decode(top, True, dec_repeats)[2]
            if n <= args.skills:
                peft_all = PeftModel.from_pretrained(load(base_dir, dtype), subset[next(iter(subset))],
                                                     adapter_name="a0")  # fmt: skip
                for i, path in enumerate(list(subset.values())[1:], 1):
                    peft_all.load_adapter(path, adapter_name=f"a{i}")
                peft_all.base_model.set_adapter([f"a{i}" for i in range(n)])
                peft_all.eval()
                entry["peft_all_active_forward_ratio"] = paired(lambda: forward(base), lambda m=peft_all: forward(m),
                                                                args.repeats)[2]  # fmt: skip
            scaling[str(n)] = entry
            print(f"scaling n={n}: {entry}", flush=True)
        by_rank = {}
        for rank in args.ranks:
            ranked = skills if rank == 8 else make_skills(base_dir, root, args.skills, dtype, rank=rank)
            config = SkillRouterConfig(skills=dict(list(ranked.items())[: args.skills]), task_type="CAUSAL_LM")
            ours = get_peft_model(load(base_dir, dtype), config).eval()
            by_rank[str(rank)] = {
                "flop_floor": flop_floor(shape, rank * args.skills),
                "forward_ratio": paired(lambda: forward(base), lambda m=ours: forward(m), args.repeats)[2],
                "decode_ratio": paired_decode(ours, True, dec_repeats)[2],
            }
            print(f"rank {rank}: {by_rank[str(rank)]}", flush=True)

    result = {
        "preset": args.preset,
        "shape": shape,
        "dtype": str(dtype),
        "batch": args.batch,
        "seq": args.seq,
        "decode": {"batch": 1, "prompt": args.prompt, "new_tokens": args.new_tokens},
        "skills": args.skills,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "cpu": cpu_description(),  # bf16 speed, and so every ratio to a bf16 base, depends on it (AMX vs AVX-512)
        "device": torch.cuda.get_device_name(DEVICE[0]) if DEVICE[0].type == "cuda" else "cpu",
        "torch": torch.__version__,
        "rows": rows,
        "train_memory": memory,
        "scaling": scaling,
        "ranks": by_rank,
        "method": "ratios are medians of per-repeat ratios, each variant timed right after the base model; "
        "flop_floor: the extra FLOPs per token of the ranks multiplied, over the base model's linear FLOPs",
    }
    if args.scaling_only:  # the other tables stay as the full run measured them
        result = {**json.loads(open(args.out).read()), "scaling": scaling, "ranks": by_rank}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print()
    print(render(result))
    print(f"\nwrote {args.out}")


def render(result: dict) -> str:
    """The markdown tables of a result (also used by scripts/update_readme.py)."""
    seqs = [str(s) for s in result["seq"]]
    b = result["batch"]
    gpu = result.get("device", "cpu") != "cpu"  # absolute throughput beside the ratios (the issue's GPU table)

    def rate(seconds: float, seq: str) -> str:
        return f", {b * int(seq) / seconds / 1000:.0f}k tok/s" if gpu else ""

    head = " | ".join(f"forward {b}x{s}" for s in seqs)
    lines = [f"| variant | FLOP floor | {head} | decode ms/token | train step (x 1 LoRA) |",
             "|---" * (4 + len(seqs)) + "|"]  # fmt: skip
    for name, row in result["rows"].items():
        if name == "base model":
            fwd = " | ".join(f"1.00 ({row['forward_s'][s]:{'.3g' if gpu else '.2f'}} s{rate(row['forward_s'][s], s)})"
                             for s in seqs)  # fmt: skip
            train = f"1 LoRA r8: {row['train_step_s (1 LoRA r8 trainable)']:.2f} s"
            lines.append(f"| base model | - | {fwd} | {row['decode_ms_per_token']:.1f} | {train} |")
            continue
        fwd = " | ".join(f"{row['forward_ratio'][s]:.2f}x{rate(row['forward_s'][s], s).replace(', ', ' (')}"
                         + (")" if gpu else "") for s in seqs)  # fmt: skip
        train = f"{row['train_ratio_vs_1_lora']:.2f}x" if "train_ratio_vs_1_lora" in row else "-"
        decode = f"{row['decode_ms_per_token']:.1f} ({row['decode_ratio']:.2f}x)"
        lines.append(f"| {name} | +{100 * row['flop_floor']:.1f} % | {fwd} | {decode} | {train} |")
    if result.get("train_memory"):
        m = result["train_memory"]
        unit, how = ("peak CUDA MiB", "device memory, two AdamW steps at the forward batch, fresh model") if gpu else (
            "peak RSS MiB", "RSS, two AdamW steps at the forward batch, fresh process")  # fmt: skip
        lines += ["", f"Training peak memory ({how}): one LoRA r8 {m[f'1 LoRA r8, {unit}']:.0f} MiB, the default "
                      f"router over {result['skills']} skills {m[f'default router, {unit}']:.0f} MiB "
                      f"({m['ratio']:.2f}x)."]  # fmt: skip
    if result["scaling"]:
        lines += ["", f"Default (sequence) router as skills are added (forward {b}x{seqs[0]}; decode as above):", "",
                  "| skills (r8) | FLOP floor | forward | decode | peft, all adapters active: forward | top_k=2 (two "
                  "skills chosen per layer): FLOP floor, forward, decode |", "|---|---|---|---|---|---|"]  # fmt: skip
        for n, e in result["scaling"].items():
            peft_all = f"{e['peft_all_active_forward_ratio']:.2f}x" if "peft_all_active_forward_ratio" in e else "-"
            top = (f"+{100 * e['top2_flop_floor']:.1f} %, {e['top2_forward_ratio']:.2f}x, "
                   f"{e['top2_decode_ratio']:.2f}x" if "top2_forward_ratio" in e else "-")  # fmt: skip
            ratios = f"{e['forward_ratio']:.2f}x | {e['decode_ratio']:.2f}x"
            lines.append(f"| {n} | +{100 * e['flop_floor']:.1f} % | {ratios} | {peft_all} | {top} |")
    if result["ranks"]:
        lines += ["", f"Default router over {result['skills']} skills of each rank:", "",
                  "| rank | FLOP floor | forward | decode |", "|---|---|---|---|"]  # fmt: skip
        for rank, e in result["ranks"].items():
            ratios = f"{e['forward_ratio']:.2f}x | {e['decode_ratio']:.2f}x"
            lines.append(f"| {rank} | +{100 * e['flop_floor']:.1f} % | {ratios} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

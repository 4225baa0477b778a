"""`SkillRouterModel`: load frozen skills, inject one mixing layer per adapted module, train only the router."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from torch import nn

from ..skills.loading import SkillFactors, load_skill_factors
from ..skills.spec import ResolvedSkill, SkillReference, parse_skill_reference, resolve_skill
from .config import SkillRouterConfig
from .layer import Linear, SkillRouterLayer
from .registration import PREFIX
from .router import RoutingState


class SkillRouterModel(BaseTuner):
    """
    Mixes frozen LoRA/AdaLoRA skills into a frozen base model with a trained router (SA-MDKIF "skill adaptation").

    Created by `get_peft_model(model, SkillRouterConfig(...))` or loaded with `PeftModel.from_pretrained`,
    `AutoPeftModelForCausalLM.from_pretrained` or transformers' `load_adapter`.
    """

    prefix: str = PREFIX
    tuner_layer_cls = SkillRouterLayer
    target_module_mapping: dict[str, list[str]] = {}

    # ------------------------------------------------------------------------------------------------------------
    # Injection
    def inject_adapter(self, model: nn.Module, adapter_name: str, **kwargs: Any) -> None:
        config: SkillRouterConfig = self.peft_config[adapter_name]
        bank = _load_skill_bank(config, model)
        state = RoutingState(config.skill_names)
        source, embed_dim = _sequence_source(config, model, bank) if config.router == "sequence" else (None, None)
        self.__dict__.setdefault("_routing_states", {})[adapter_name] = state
        self.__dict__["_pending"] = (bank, state, embed_dim)
        try:
            super().inject_adapter(model, adapter_name, **kwargs)
        finally:
            self.__dict__.pop("_pending", None)
        if config.router == "sequence":
            state.attach(model, dict(model.named_modules())[source] if source else None)

    def _prepare_adapter_config(self, peft_config: SkillRouterConfig, model_config: dict) -> SkillRouterConfig:
        bank = self.__dict__["_pending"][0]
        peft_config.target_modules = {m.rsplit(".", 1)[-1] for m in bank.modules}
        return peft_config

    def _check_target_module_exists(self, peft_config: SkillRouterConfig, key: str) -> bool:
        pending = self.__dict__.get("_pending")
        return pending is not None and key in pending[0].modules

    def _create_and_replace(
        self,
        peft_config: SkillRouterConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        **optional_kwargs: Any,
    ) -> None:
        bank, state, embed_dim = self.__dict__["_pending"]
        A, B, slots = bank.modules[current_key]
        kwargs = dict(
            skill_names=peft_config.skill_names,
            A=A,
            B=B,
            slots=slots,
            router=peft_config.router,
            routing={
                "temperature": float(peft_config.temperature),
                "top_k": peft_config.top_k,
                "null_expert": peft_config.null_expert,
            },
            state=state,
            embed_dim=embed_dim,
            inference_mode=peft_config.inference_mode,
            task_rank=peft_config.task_rank,
            task_scale=peft_config.task_scale,
            task_dropout=float(peft_config.task_dropout),
        )
        if isinstance(target, SkillRouterLayer):
            target.update_layer(adapter_name, **kwargs)
            return
        new_module = Linear(target, adapter_name, **kwargs)
        if adapter_name not in self.active_adapters:
            # adding an additional adapter: it is not automatically trainable
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    @classmethod
    def _remove_adapter_name_from_key(cls, key: str, adapter_name: str) -> str:
        # Gate modules nest their own parameters (`skill_router_gate.<adapter>.proj.weight`), which peft's default only
        # strips when the adapter name is second to last; transformers' loader re-inserts it after the prefix part.
        return re.sub(rf"(\.{PREFIX}[^.]*)\.{re.escape(adapter_name)}\.", r"\1.", key)

    # ------------------------------------------------------------------------------------------------------------
    # Forward
    @contextmanager
    def _enable_peft_forward_hooks(self, *args: Any, **kwargs: Any) -> Iterator[None]:
        """Open a routing session: within one `generate`, every step reuses the prompt's gates, cache or no cache."""
        with ExitStack() as stack:
            for name in self.active_adapters:
                state = self._routing_states.get(name)
                if state is not None:
                    stack.enter_context(state.session())
            yield

    def _layers(self) -> Iterator[SkillRouterLayer]:
        for module in self.model.modules():
            if isinstance(module, SkillRouterLayer):
                yield module

    @property
    def _routing_states(self) -> dict[str, RoutingState]:
        return self.__dict__.setdefault("_routing_states", {})

    def _active_router(self) -> str:
        if len(self.active_adapters) != 1:
            raise ValueError(f"Expected exactly one active skill router, got {self.active_adapters}")
        return self.active_adapters[0]

    @contextmanager
    def force_skill_weights(
        self, weights: Mapping[str, float] | Sequence[float] | torch.Tensor, adapter_name: str | None = None
    ) -> Iterator[None]:
        """Override the router with fixed weights over the skills (missing skills get 0), e.g. for ablations.

        `{"ner": 1.0}` runs the NER skill alone; `{}` (all zero) gives the base model.
        """
        name = adapter_name or self._active_router()
        state = self._routing_states[name]
        names = state.skill_names
        if isinstance(weights, Mapping):
            unknown = set(weights) - set(names)
            if unknown:
                raise ValueError(f"Unknown skills {sorted(unknown)}; this router mixes {names}")
            vector = torch.tensor([float(weights.get(n, 0.0)) for n in names])
        else:
            vector = torch.as_tensor(weights, dtype=torch.float32).flatten()
            if vector.numel() != len(names):
                raise ValueError(
                    f"Expected {len(names)} skill weights (one per skill in {names}), got {vector.numel()}"
                )
        previous, state.forced = state.forced, vector
        try:
            yield
        finally:
            state.forced = previous

    def get_routing_weights(self, adapter_name: str | None = None) -> dict[str, torch.Tensor]:
        """Skill weights each adapted module used in the last forward: (S,), (B, 1, S) or (B, T, S) per module."""
        name = adapter_name or self._active_router()
        out = {}
        for key, module in self.model.named_modules():
            if isinstance(module, SkillRouterLayer) and name in module._last_gates:
                out[key] = module._last_gates[name]
        return out

    @torch.no_grad()
    def mean_routing_weights(
        self, tokenizer: Any, prompts: Sequence[str], *, batch_size: int = 8, adapter_name: str | None = None
    ) -> dict[str, torch.Tensor]:
        """Mean skill weights (S,) per adapted module over `prompts`: a token router's gates are averaged over each
        prompt's real tokens first, so every prompt counts once. For routing heat-maps and for folding an
        input-dependent router into fixed weights (`export_lora`)."""
        name = adapter_name or self._active_router()
        if not prompts:
            raise ValueError("mean_routing_weights needs at least one prompt")
        sums: dict[str, torch.Tensor] = {}
        padding_side, tokenizer.padding_side = tokenizer.padding_side, "right"
        was_training = self.model.training
        self.model.eval()
        try:
            for i in range(0, len(prompts), batch_size):
                batch = tokenizer(list(prompts[i : i + batch_size]), return_tensors="pt", padding=True,
                                  add_special_tokens=False)  # fmt: skip
                batch = {k: v.to(self.model.device) for k, v in batch.items()}
                self.model(**batch)
                mask = batch["attention_mask"].float()
                for key, gates in self.get_routing_weights(name).items():
                    gates = gates.float()
                    if gates.dim() == 3 and gates.shape[1] == mask.shape[1]:  # token router
                        gates = (gates * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
                    gates = gates.reshape(len(mask), -1) if gates.dim() > 1 else gates.expand(len(mask), -1)
                    sums[key] = sums.get(key, 0) + gates.sum(0).cpu()
        finally:
            tokenizer.padding_side = padding_side
            self.model.train(was_training)
        return {key: total / len(prompts) for key, total in sums.items()}

    def routing_summary(self, adapter_name: str | None = None) -> dict[str, float]:
        """Mean weight per skill over modules, batch and tokens of the last forward (for plots and logs)."""
        name = adapter_name or self._active_router()
        weights = self.get_routing_weights(name)
        if not weights:
            return {}
        means = torch.stack([w.float().reshape(-1, w.shape[-1]).mean(0) for w in weights.values()]).mean(0)
        return dict(zip(self._routing_states[name].skill_names, means.tolist()))

    # ------------------------------------------------------------------------------------------------------------
    # Merge / delete / unload
    def _check_merge_allowed(self) -> None:
        super()._check_merge_allowed()
        for name in self.active_adapters:
            config = self.peft_config[name]
            if config.router != "static" and self._routing_states[name].forced is None:
                raise ValueError(
                    f"Cannot merge skill router {name!r} with router={config.router!r}: its weights depend on the "
                    "input. Train with router='static' to merge, or merge inside `force_skill_weights(...)`."
                )

    def delete_adapter(self, adapter_name: str) -> None:
        state = self._routing_states.pop(adapter_name, None)
        super().delete_adapter(adapter_name)
        if state is not None:
            state.detach()

    def _unload_and_optionally_merge(self, *args: Any, **kwargs: Any) -> nn.Module:
        model = super()._unload_and_optionally_merge(*args, **kwargs)
        for state in self._routing_states.values():
            state.detach()
        return model


# ----------------------------------------------------------------------------------------------------------------
# Skill bank: every skill loaded, checked against the model and each other, and concatenated per module.


class SkillBank:
    def __init__(self, modules: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
        self.modules = modules  # module path -> (A_cat (K, in), B_cat (out, K), slot -> skill index (K,))


def _load_skill_bank(config: SkillRouterConfig, model: nn.Module) -> SkillBank:
    resolved = [_resolve(config, name, config.skills[name]) for name in config.skill_names]
    factors = [load_skill_factors(r, allow_pickle=config.allow_pickle) for r in resolved]
    _check_compatible(config, model, factors)
    # Pin what was loaded; the next save writes it and the next load verifies it.
    config.skill_lock = {
        r.spec.name: {"revision": r.revision, "sha256": r.sha256, "peft_type": f.peft_type}
        for r, f in zip(resolved, factors)
    }
    config._resolved_skill_dirs = {r.spec.name: (r.directory, r.files) for r in resolved}

    modules_dtype = {name: module for name, module in model.named_modules()}
    bank = {}
    for module in sorted(factors[0].modules):
        weight = _base_weight(modules_dtype[module])
        a = torch.cat([f.modules[module][0] for f in factors], dim=0)
        b = torch.cat([f.modules[module][1] for f in factors], dim=1)
        slots = torch.cat([torch.full((f.modules[module][0].shape[0],), i) for i, f in enumerate(factors)])
        bank[module] = (a.to(weight.device, weight.dtype), b.to(weight.device, weight.dtype), slots.to(weight.device))
    return SkillBank(bank)


def _resolve(config: SkillRouterConfig, name: str, reference: str) -> ResolvedSkill:
    lock = config.skill_lock.get(name, {})
    spec = _spec_for(config, name, reference, lock)
    skill = resolve_skill(spec, allow_pickle=config.allow_pickle)
    expected = lock.get("sha256")
    if expected and expected != skill.sha256:
        raise ValueError(
            f"Skill {name!r} changed since this router was trained: {spec.reference} now has weights sha256 "
            f"{skill.sha256[:12]}..., the router was trained with {expected[:12]}.... Pin the old revision, or "
            "retrain the router on the new skill."
        )
    return skill


def _spec_for(config: SkillRouterConfig, name: str, reference: str, lock: dict[str, Any]) -> SkillReference:
    source = getattr(config, "_source", None)
    if lock.get("bundled"):
        # Bundled skills live in the router repo itself: resolve relative to where the router was loaded from.
        if source is None:
            raise ValueError(
                f"Skill {name!r} is bundled in the router repo ({reference!r}) but the router's location is unknown "
                "(transformers' from_pretrained/load_adapter does not pass it on); load the router with "
                "PeftModel.from_pretrained or AutoPeftModelForCausalLM.from_pretrained"
            )
        root = os.path.join(source["path"], source["subfolder"] or "")
        if os.path.isdir(root):
            return parse_skill_reference(name, os.path.join(root, reference))
        sub = "/".join(p for p in (source["subfolder"], reference) if p)
        return SkillReference(name, reference, repo_id=source["path"], subfolder=sub, revision=source["revision"])
    base_dir = None
    if source is not None and os.path.isdir(source["path"]):
        base_dir = os.path.join(source["path"], source["subfolder"] or "")
    if _was_local(lock):
        return _local_spec(name, reference, lock, base_dir)
    try:
        spec = parse_skill_reference(name, reference, base_dir=base_dir)
    except FileNotFoundError as err:
        if source is None and not os.path.isabs(reference):
            # transformers' from_pretrained/load_adapter build the config without telling us where it came from.
            raise FileNotFoundError(
                f"{err} Relative skill paths are resolved against the router directory, whose location is unknown "
                "here (transformers' loader does not pass it on): load the router with PeftModel.from_pretrained or "
                "AutoPeftModelForCausalLM.from_pretrained, or reference the skill by absolute path or Hub repo id."
            ) from err
        raise
    if spec.repo_id is not None and lock.get("revision"):
        spec = SkillReference(
            name, reference, repo_id=spec.repo_id, subfolder=spec.subfolder, revision=lock["revision"]
        )
    return spec


def _sequence_source(config: SkillRouterConfig, model: nn.Module, bank: SkillBank) -> tuple[str | None, int]:
    """`(module to pool from or None for the embeddings, its feature size)`; records the choice in the config."""
    embeddings = None
    try:
        embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    except NotImplementedError:  # transformers' default for models that have none
        embeddings = None
    choice = config.sequence_input or ("embeddings" if embeddings is not None else "first_layer")
    config.sequence_input = choice
    if choice == "embeddings":
        if embeddings is None or not hasattr(embeddings, "embedding_dim"):
            raise ValueError(
                "sequence_input='embeddings' pools the prompt's input embeddings, but the model has no "
                "get_input_embeddings(); use sequence_input='first_layer' (or None), or router='token'/'static'"
            )
        return None, embeddings.embedding_dim
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    first = min(bank.modules, key=lambda m: order.get(m, len(order)))
    return first, bank.modules[first][0].shape[1]  # A: (K, in_features)


def _was_local(lock: Mapping[str, Any]) -> bool:
    """A pinned skill that was a local folder when the router was saved: pinned by hash, with no Hub revision."""
    pinned_locally = lock.get("sha256") and not lock.get("revision") and not lock.get("bundled")
    return bool(lock.get("local_path") or pinned_locally)


def _local_spec(name: str, reference: str, lock: Mapping[str, Any], base_dir: str | None) -> SkillReference:
    """Find a skill that was local: next to the router, then where it was saved from, then the working directory;
    never on the Hub (a path such as `runs/skills/ner` would otherwise be taken for the repo `runs/skills`)."""
    candidates = [os.path.join(base_dir, reference)] if base_dir and not os.path.isabs(reference) else []
    candidates += [p for p in (lock.get("local_path"), reference) if p]
    for candidate in candidates:
        if os.path.isdir(candidate):
            return SkillReference(name=name, reference=reference, path=os.path.abspath(candidate))
    tried = ", ".join(dict.fromkeys(os.path.abspath(c) for c in candidates))
    raise FileNotFoundError(
        f"Skill {name!r} was a local folder when this router was saved and is not there now (looked in: {tried}). "
        "Put the skill back (or next to the router at the same relative path), or re-save the router with "
        "bundle_skills=True or with the skill pushed to the Hub and referenced by repo id."
    )


def _base_weight(module: nn.Module) -> torch.Tensor:
    if isinstance(module, BaseTunerLayer):
        module = module.get_base_layer()
    return module.weight


def _check_compatible(config: SkillRouterConfig, model: nn.Module, factors: list[SkillFactors]) -> None:
    """All skills must adapt the same modules of this very model; say exactly what differs."""
    ref = factors[0]
    for f in factors[1:]:
        if set(f.modules) != set(ref.modules):
            only_f, only_ref = sorted(set(f.modules) - set(ref.modules)), sorted(set(ref.modules) - set(f.modules))
            raise ValueError(
                f"Skills {ref.name!r} and {f.name!r} adapt different modules: only {f.name!r} has "
                f"{_short(only_f)}, only {ref.name!r} has {_short(only_ref)}. Train all skills with the same "
                "target_modules."
            )
    if config.check_base_model:
        _check_same_base_weights(model, factors)
    named = dict(model.named_modules())
    for module in sorted(ref.modules):
        if module not in named:
            raise ValueError(
                f"Skill {ref.name!r} adapts {module!r}, which the model does not have: the skills were trained on a "
                "different architecture"
            )
        target = named[module]
        if isinstance(target, BaseTunerLayer):
            target = target.get_base_layer()
        if isinstance(target, nn.Linear):
            in_f, out_f = target.in_features, target.out_features
        elif type(target).__name__ == "Conv1D":
            in_f, out_f = target.weight.shape
        else:
            raise ValueError(f"Module {module!r} is a {type(target).__name__}; skills can only adapt nn.Linear layers")
        for f in factors:
            a, b = f.modules[module]
            if a.shape[1] != in_f or b.shape[0] != out_f:
                raise ValueError(
                    f"Skill {f.name!r} does not fit module {module!r}: its factors map {a.shape[1]} -> {b.shape[0]} "
                    f"features, the model's layer maps {in_f} -> {out_f}. It was trained on a different base model."
                )


def _check_same_base_weights(model: nn.Module, factors: list[SkillFactors]) -> None:
    """Refuse skills whose recorded base-weight fingerprint differs from the model's (or each other's); a differing
    base-model *name* alone only warns: one checkpoint has many names (a cache path here, a Hub id there)."""
    from ..skills.fingerprint import base_model_fingerprint

    stamped = {f.name: f.base_fingerprint for f in factors if f.base_fingerprint}
    if stamped:
        actual = base_model_fingerprint(model, factors[0].modules)
        wrong = {name: fp for name, fp in stamped.items() if fp != actual}
        if wrong:
            names = {f.name: f.base_model_name_or_path for f in factors if f.name in wrong}
            raise ValueError(
                f"Skill(s) {sorted(wrong)} were trained on other base weights than this model's (weights fingerprint "
                f"{sorted(set(wrong.values()))} vs {actual}; trained on {names}). Load the skills' base model, or "
                "pass check_base_model=False if you really mean to mix them into these weights."
            )
    model_name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    unverified = {f.name: f.base_model_name_or_path for f in factors if not f.base_fingerprint}
    named = {n: b for n, b in unverified.items() if b and (not model_name or _norm(b) != _norm(model_name))}
    if named:
        warnings.warn(
            f"Skill(s) {sorted(named)} name another base model ({sorted(set(named.values()))}) than this model "
            f"({model_name!r}) and carry no weights fingerprint to check; they load because shapes match. If the "
            "weights differ, the skills will not do what they learned.",
            stacklevel=4,
        )


def _norm(name: str) -> str:
    return os.path.normpath(os.path.abspath(name)) if os.path.isdir(name) else name.rstrip("/")


def _short(items: list[str], n: int = 4) -> str:
    return str(items[:n])[:-1] + (f", ... {len(items) - n} more]" if len(items) > n else "]")

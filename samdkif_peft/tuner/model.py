"""`SkillRouterModel`: load frozen skills, inject one mixing layer per adapted module, train only the router."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTuner
from torch import nn

from ..skills.bank import SkillBank, load_skill_bank
from .config import SkillRouterConfig
from .layer import Linear, SkillRouterLayer
from .registration import PREFIX
from .router import ROUTERS, RoutingState, get_router, mergeable_kinds


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
        bank = load_skill_bank(config, model)
        state = RoutingState(config.skill_names)
        needs_prompt = get_router(config).needs_prompt
        source, embed_dim = _prompt_source(config, model, bank) if needs_prompt else (None, None)
        self.__dict__.setdefault("_routing_states", {})[adapter_name] = state
        self.__dict__["_pending"] = (bank, state, embed_dim, {})  # the last: gates shared under `gate_scope`
        try:
            super().inject_adapter(model, adapter_name, **kwargs)
        finally:
            self.__dict__.pop("_pending", None)
        if needs_prompt:
            probe = config.sequence_input.startswith("layer:")  # a base-only pass up to that block, per prompt
            state.attach(model, dict(model.named_modules())[source] if source else None, probe=probe)

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
        bank, state, embed_dim, shared_gates = self.__dict__["_pending"]
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
            _share_gate(target, adapter_name, current_key, peft_config.gate_scope, shared_gates)
            return
        new_module = Linear(target, adapter_name, **kwargs)
        _share_gate(new_module, adapter_name, current_key, peft_config.gate_scope, shared_gates)
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

    @torch.no_grad()
    def set_routing_prior(self, weights: Mapping[str, float], adapter_name: str | None = None) -> None:
        """Start every layer's router at `weights` over the skills (e.g. from each skill's fit to the task) instead of
        uniform: the input-independent logits become `log(weight) * temperature` (a null choice gets the lowest)."""
        name = adapter_name or self._active_router()
        names = self._routing_states[name].skill_names
        unknown = set(weights) - set(names)
        if unknown or not weights or min(weights.values()) < 0:
            raise ValueError(f"set_routing_prior needs non-negative weights over {names}, got {dict(weights)}")
        prior = torch.tensor([float(weights.get(n, 0.0)) for n in names]).clamp(min=1e-6)
        for layer in self._layers():
            if name not in layer.skill_router_gate:
                continue
            routing = layer.routing[name]
            logits = (prior / prior.sum()).log() * routing["temperature"]
            if routing["null_expert"]:
                logits = torch.cat([logits, logits.min().reshape(1)])
            layer.skill_router_gate[name].set_prior(logits)

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
            if not get_router(config).mergeable and self._routing_states[name].forced is None:
                raise ValueError(
                    f"Cannot merge skill router {name!r} with router={config.router!r}: its weights depend on the "
                    f"input. Train with {mergeable_kinds()} to merge, or merge inside `force_skill_weights(...)`."
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
# Gates shared between modules (`gate_scope`).


def gate_group(key: str, scope: str) -> str:
    """The group of modules whose gate the module at `key` shares under `scope` (its own key under "module")."""
    if scope == "module":
        return key
    block = re.match(r"(.*?\.\d+)\.", key)  # the first numbered module list entry: a decoder block
    return "" if scope == "model" else (block.group(1) if block else key)


def _share_gate(layer: SkillRouterLayer, adapter_name: str, key: str, scope: str, shared: dict) -> None:
    """Give `layer` the gate of the first module of its group under `scope` (the layer's own gate if it is the first).

    Shared gates are one module object in several layers: one set of parameters, trained by every module it serves,
    saved under each module's key (peft clones aliased tensors before writing safetensors) and tied again on load,
    because every load path builds the layers through `_create_and_replace`.
    """
    if scope == "module":
        return
    group = gate_group(key, scope)
    gate = layer.skill_router_gate[adapter_name]
    first = shared.setdefault(group, (gate, layer.in_features, key))
    if first[0] is gate:
        return
    if not gate.ignores_layer_input and first[1] != layer.in_features:
        raise ValueError(
            f"gate_scope={scope!r} would share one {layer.router_kind[adapter_name]!r} router between {first[2]!r} "
            f"(input size {first[1]}) and {key!r} (input size {layer.in_features}), but this router kind reads the "
            "layer's input; use gate_scope='module' (or 'layer'), a router kind that ignores the layer's input "
            "('sequence', 'static'), or skills on modules of one input size"
        )
    layer.skill_router_gate[adapter_name] = first[0]


# ----------------------------------------------------------------------------------------------------------------
# Prompt routers: what they pool the prompt from.


def _prompt_source(config: SkillRouterConfig, model: nn.Module, bank: SkillBank) -> tuple[str | None, int]:
    """Where a prompt router pools the prompt: `(module to pool from or None for the embeddings, its feature size)`;
    records the choice in the config (`sequence_input`)."""
    embeddings = None
    try:
        embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    except NotImplementedError:  # transformers' default for models that have none
        embeddings = None
    choice = config.sequence_input or ("embeddings" if embeddings is not None else "first_layer")
    config.sequence_input = choice
    if choice.startswith("layer:"):
        return _decoder_block(model, bank, int(choice.split(":")[1]), embeddings)
    if choice == "embeddings":
        if embeddings is None or not hasattr(embeddings, "embedding_dim"):
            raise ValueError(
                "sequence_input='embeddings' pools the prompt's input embeddings, but the model has no "
                "get_input_embeddings(); use sequence_input='first_layer' (or None), or a router that does not "
                f"route on the prompt ({', '.join(repr(k) for k, cls in ROUTERS.items() if not cls.needs_prompt)})"
            )
        return None, embeddings.embedding_dim
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    first = min(bank.modules, key=lambda m: order.get(m, len(order)))
    return first, bank.modules[first][0].shape[1]  # A: (K, in_features)


def _decoder_block(model: nn.Module, bank: SkillBank, index: int, embeddings: nn.Module | None) -> tuple[str, int]:
    """`sequence_input='layer:N'`: block N of the module list that holds the adapted layers (a decoder's `layers`),
    and the width of the hidden state that enters it."""
    first = next(iter(bank.modules))
    blocks = [
        (name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and first.startswith(name + ".")
    ]
    if not blocks:
        raise ValueError(
            f"sequence_input='layer:{index}' pools the hidden state entering decoder block {index}, but the adapted "
            f"module {first!r} sits in no nn.ModuleList of blocks; use sequence_input='embeddings' or 'first_layer'"
        )
    name, layers = max(blocks, key=lambda item: len(item[0]))  # the innermost list holding the adapted layers
    if not 0 <= index < len(layers):
        raise ValueError(
            f"sequence_input='layer:{index}': the model has {len(layers)} blocks in {name!r}; choose N in "
            f"[0, {len(layers) - 1}] (e.g. layer:{len(layers) // 2}, the middle)"
        )
    width = getattr(getattr(model, "config", None), "hidden_size", None)
    width = width or getattr(embeddings, "embedding_dim", None)
    if width is None:
        raise ValueError(f"sequence_input='layer:{index}' needs model.config.hidden_size to size the router")
    return f"{name}.{index}", int(width)

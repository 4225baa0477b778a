"""Routers: the registry of router kinds (per-layer gate modules), and the per-model routing state prompt routers read.

Each adapted layer owns its gate (so the router's parameters live inside the layers, like Arrow and MoLE, and survive
transformers' `inject_adapter_in_model`, which throws the tuner away). The only model-level signal is the pooled prompt
embedding of the sequence router: it has no parameters and is detached, so gradient checkpointing (reentrant or not)
recomputes every layer from its own inputs and parameters, which is where X-LoRA's routing breaks.
"""

from __future__ import annotations

import warnings
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


if TYPE_CHECKING:
    from .config import SkillRouterConfig


class Router(nn.Module):
    """One layer's gate: routing logits over the skills (and the null choice) for this layer's input.

    A router kind is one registered subclass, and what the rest of the tuner must know about it is declared on it, so
    config validation, merging, `export_lora`, the prompt hooks, the CLI and the model card read it from here.
    """

    kind: ClassVar[str]  # the value of `SkillRouterConfig.router` (saved in adapter_config.json)
    description: ClassVar[str]  # one line for model cards and CLI help
    # The gates do not depend on the input: they fold into the base weights (`merge_and_unload`) and export exactly as
    # one LoRA. Input-dependent kinds merge only inside `force_skill_weights`, and export averaged over prompts.
    mergeable: ClassVar[bool] = False
    # Routes on the pooled prompt (`RoutingState` hooks it into the top-level forward), so the gates stay fixed for
    # the whole generation: decoding with a KV cache reuses the prompt's gates instead of routing on new tokens.
    needs_prompt: ClassVar[bool] = False
    # The gates ignore the layer's own input `x` (they read only parameters and the pooled prompt), so in eval mode a
    # layer may compute them once per prompt and reuse them for every decoded token. False (safe) unless declared.
    ignores_layer_input: ClassVar[bool] = False
    # The rate `train_router` trains this kind at when the caller sets none (None: `ROUTER_TRAINING_DEFAULTS`').
    learning_rate: ClassVar[float | None] = None

    def __init__(self, in_features: int, n_choices: int, prompt_features: int | None = None):
        """`in_features`: the layer's input size; `prompt_features`: the pooled prompt's size (prompt routers)."""
        super().__init__()

    def forward(self, x: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        """Logits (S,), (B, 1, S) or (B, T, S) for the layer input `x` and the pooled prompt `pooled` (B, H)."""
        raise NotImplementedError

    @torch.no_grad()
    def set_prior(self, logits: torch.Tensor) -> None:
        """Make `logits` the input-independent part of the routing logits (a starting point for training)."""
        proj = getattr(self, "proj", None)
        if not isinstance(proj, nn.Linear) or proj.bias is None:
            raise NotImplementedError(f"router kind {self.kind!r} does not declare how to take a prior")
        proj.bias.copy_(logits.to(proj.bias))


ROUTERS: dict[str, type[Router]] = {}


def register_router(cls: type[Router]) -> type[Router]:
    """Class decorator: make `cls.kind` a valid `SkillRouterConfig.router`. Refuses a kind already taken."""
    registered = ROUTERS.get(cls.kind)
    if registered is not None and registered.__qualname__ != cls.__qualname__:  # a reload replaces its own entry
        raise ValueError(f"Router kind {cls.kind!r} is already registered by {registered!r}")
    ROUTERS[cls.kind] = cls
    return cls


def get_router(config: SkillRouterConfig | str) -> type[Router]:
    """The router class of `config` (a `SkillRouterConfig`, or a router kind as a string)."""
    kind = config if isinstance(config, str) else config.router
    if kind not in ROUTERS:
        raise ValueError(
            f"Unsupported router {kind!r}; only the following kinds are supported: {', '.join(map(repr, ROUTERS))}"
        )
    return ROUTERS[kind]


def mergeable_kinds() -> str:
    """`router='static'`: the kinds whose gates fold into the base weights, for error messages."""
    return " or ".join(f"router={kind!r}" for kind, cls in ROUTERS.items() if cls.mergeable)


def describe_routers() -> str:
    """`'sequence': ...; 'token': ...`: every kind with its description, for help texts."""
    return "; ".join(f"{kind!r}: {cls.description}" for kind, cls in ROUTERS.items())


@register_router
class SequenceRouter(Router):
    """Gates per layer from the pooled prompt: the paper's task-guided router, fixed for a whole generation."""

    kind = "sequence"
    description = "gates per adapted layer from the pooled prompt, fixed through generation"
    needs_prompt = True
    ignores_layer_input = True

    def __init__(self, in_features: int, n_choices: int, prompt_features: int | None = None):
        super().__init__(in_features, n_choices, prompt_features)
        self.proj = _zero_linear(prompt_features if prompt_features is not None else in_features, n_choices)

    def forward(self, x: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        if pooled is None:
            raise RuntimeError(
                "The sequence router has no prompt representation for this forward: call the model through its "
                "top-level forward/generate (the pooling hook sits on it), not an inner module"
            )
        logits = self.proj(pooled.to(self.proj.weight.dtype))  # (B, S)
        return logits if x.dim() == 2 else logits.unsqueeze(1)  # (B, 1, S) for (B, T, H) inputs


@register_router
class TokenRouter(Router):
    """Gates per token from the layer's own input (causal by construction, so cached decoding is exact)."""

    kind = "token"
    description = "gates per token from each layer's input"

    def __init__(self, in_features: int, n_choices: int, prompt_features: int | None = None):
        super().__init__(in_features, n_choices, prompt_features)
        self.proj = _zero_linear(in_features, n_choices)

    def forward(self, x: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        return self.proj(x.to(self.proj.weight.dtype))  # (B, T, S)


@register_router
class StaticRouter(Router):
    """Learned logits per layer, independent of the input: mergeable into the base weights."""

    kind = "static"
    description = "learned gates per layer, mergeable with `merge_and_unload()`"
    mergeable = True
    ignores_layer_input = True
    # Adam moves a parameter by about its rate per step whatever the gradient's size. A prompt router's logit sums
    # hundreds of such steps (one per input feature), a bare logit takes one: at the prompt routers' rate (5e-3) a
    # static router ends an epoch within 0.02 of the uniform mix and scores like it (docs/MEDICAL_VALUE.md section 26).
    learning_rate = 0.1

    def __init__(self, in_features: int, n_choices: int, prompt_features: int | None = None):
        super().__init__(in_features, n_choices, prompt_features)
        self.logits = nn.Parameter(torch.zeros(n_choices))

    def forward(self, x: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        return self.logits  # (S,)

    @torch.no_grad()
    def set_prior(self, logits: torch.Tensor) -> None:
        self.logits.copy_(logits.to(self.logits))


def _zero_linear(in_features: int, n_choices: int) -> nn.Linear:
    """A zero-initialised linear map to routing logits: training starts from the uniform average of the skills."""
    proj = nn.Linear(in_features, n_choices)
    nn.init.zeros_(proj.weight)
    nn.init.zeros_(proj.bias)
    return proj


def routing_weights(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, null_expert: bool = False
) -> torch.Tensor:
    """Softmax over routing choices (optionally top-k), then drop the null choice: weights over the skills only.

    Top-k renormalises over the kept choices (as Mixtral does). With `top_k=1` that weight is constantly 1 and would
    give the router no gradient, so its value stays 1 while the gradient flows through the full softmax
    probability (straight-through, in the spirit of Switch Transformer's `p_i` scaling).
    """
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        keep = logits >= kth
        weights = F.softmax(logits.masked_fill(~keep, float("-inf")), dim=-1)
        if top_k == 1:
            probs = F.softmax(logits, dim=-1) * keep
            weights = weights + (probs - probs.detach())  # exactly 0 in value, so the gate stays exactly 1
    else:
        weights = F.softmax(logits, dim=-1)
    return weights[..., :-1] if null_expert else weights


class _ProbeDone(Exception):
    """Raised by the probe block's pre-hook: the pass has what it came for."""


class RoutingState:
    """Per-model state shared by the layers of one router adapter.

    Holds the pooled prompt embedding of the current forward (kept until the next forward so that gradient
    checkpointing recomputes the same gates), prompts remembered per KV cache (so decoding reuses the prompt's gates),
    forced weights for ablations, and the hooks that compute all of this.
    """

    def __init__(self, skill_names: list[str]):
        self.skill_names = list(skill_names)
        self.pooled: torch.Tensor | None = None
        self.forced: torch.Tensor | None = None
        self._by_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._session: dict[str, Any] | None = None
        self._handles: list[Any] = []
        self._embeddings: nn.Module | None = None
        self._deferred: dict[str, Any] | None = None  # first_layer source: what to pool once that layer runs
        self._warned_empty_prompt = False
        self._probe_block: nn.Module | None = None  # layer:N source: the block whose input a base-only pass pools
        self.probing = False  # inside that pass: the layers leave the skills out

    # -- hooks (prompt routers only) --------------------------------------------------------------------------------
    def attach(self, model: nn.Module, source: nn.Module | None = None, probe: bool = False) -> None:
        """Pool the prompt in a pre-hook on the top-level model (one embedding lookup, no second forward pass), or,
        with a `source` module (`sequence_input='first_layer'`), from that module's input when it first runs, or
        with `probe` (`sequence_input='layer:N'`, `source` = block N), from a base-only pass up to that block."""
        if self._handles:
            return
        if source is None:
            self._embeddings = model.get_input_embeddings()
        elif probe:
            self._probe_block = source
        else:
            self._handles.append(source.register_forward_pre_hook(self._pool_source_input))
        self._handles.append(model.register_forward_pre_hook(self._pre_forward, with_kwargs=True))
        self._handles.append(model.register_forward_hook(self._post_forward, with_kwargs=True))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.pooled = None

    @contextmanager
    def session(self):
        """One generate() (or one forward): the first forward's input is the prompt; later ones reuse its gates."""
        outer, self._session = self._session, {}
        try:
            yield
        finally:
            self._session = outer

    def _pre_forward(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.probing:  # the probe's own pass through the model: nothing to route
            return
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        inputs_embeds = kwargs.get("inputs_embeds")
        cache = kwargs.get("past_key_values", kwargs.get("cache"))  # transformers 5.x renames it `cache`
        past_len = cache.get_seq_length() if cache is not None and hasattr(cache, "get_seq_length") else 0
        batch = (inputs_embeds if inputs_embeds is not None else input_ids).shape[0]
        session = self._session
        if session is not None and session.get("pooled") is not None and session["pooled"].shape[0] == batch:
            pooled = session["pooled"]
        elif past_len > 0:
            pooled = self._by_cache.get(cache)
            if pooled is None or pooled.shape[0] != batch:
                raise ValueError(
                    "The sequence router routes on the prompt, but this KV cache was not produced by this model's "
                    "forward (or its batch changed). Run the prompt through the model to build the cache."
                )
        elif self._probe_block is not None:  # layer:N: a base-only pass through blocks 0..N-1
            pooled = self._probe(module, input_ids, inputs_embeds, kwargs)
            if session is not None:
                session["pooled"] = pooled
        elif self._embeddings is None:  # first_layer: pooled when that layer sees its input, further down
            self._deferred = {"attention_mask": kwargs.get("attention_mask"), "labels": kwargs.get("labels")}
            pooled = None
        else:
            embeds = inputs_embeds if inputs_embeds is not None else self._embeddings(input_ids)
            pooled = self._pool(embeds, kwargs.get("attention_mask"), kwargs.get("labels"))
            if session is not None:
                session["pooled"] = pooled
        self.pooled = pooled

    def _pool_source_input(self, module: nn.Module, args: tuple) -> None:
        """Pool the first adapted layer's input, once per top-level forward (a checkpointed recompute reuses it)."""
        if self._deferred is None:
            return
        deferred, self._deferred = self._deferred, None
        self.pooled = self._pool(args[0], deferred["attention_mask"], deferred["labels"])
        if self._session is not None:
            self._session["pooled"] = self.pooled

    @torch.no_grad()
    def _probe(self, model: nn.Module, input_ids: Any, inputs_embeds: Any, kwargs: dict) -> torch.Tensor:
        """The pooled hidden state entering the probe block: the base model (skills left out) runs up to that block
        and stops there, so the pass costs N of the model's blocks, once per prompt."""
        captured: dict[str, torch.Tensor] = {}

        def stop(block: nn.Module, args: tuple, kw: dict) -> None:
            captured["hidden"] = args[0] if args else kw["hidden_states"]
            raise _ProbeDone

        inputs = {k: kwargs[k] for k in ("attention_mask", "position_ids") if kwargs.get(k) is not None}
        inputs.update({"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {"input_ids": input_ids})
        handle = self._probe_block.register_forward_pre_hook(stop, with_kwargs=True)
        self.probing = True
        try:
            model(**inputs, use_cache=False)
        except _ProbeDone:
            pass
        finally:
            self.probing = False
            handle.remove()
        if "hidden" not in captured:
            raise RuntimeError("sequence_input='layer:N': the model's forward never reached block N")
        return self._pool(captured["hidden"], kwargs.get("attention_mask"), kwargs.get("labels"))

    def _post_forward(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        cache = getattr(output, "past_key_values", None)
        if cache is not None and self.pooled is not None:
            try:
                self._by_cache[cache] = self.pooled
            except TypeError:  # a legacy tuple cache cannot be weak-referenced; decoding with it needs a session
                pass

    @torch.no_grad()
    def _pool(
        self, embeds: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """RMS-normalised mean over the prompt positions of `embeds` ((B, T, H), or (B, H): one position).

        The prompt is the attended tokens before the first supervised label, so in training the router never sees the
        answer it is asked to produce (and at inference the whole input is the prompt).
        """
        if embeds.dim() == 2:
            embeds = embeds.unsqueeze(1)
        mask = torch.ones(embeds.shape[:2], dtype=torch.bool, device=embeds.device)
        if attention_mask is not None and attention_mask.dim() == 2:
            mask &= attention_mask[:, -embeds.shape[1] :].bool()
        if labels is not None and labels.shape == mask.shape:
            mask &= (labels != -100).long().cumsum(dim=1) == 0
            if not self._warned_empty_prompt and not mask.any(dim=1).all():
                self._warned_empty_prompt = True
                warnings.warn(
                    "The sequence router routes on the prompt (the tokens before the first supervised label), but "
                    "some rows supervise from their first token, so the router sees no prompt for them and only its "
                    "bias trains. Mask the prompt in `labels` with -100 (e.g. a completion-only collator).",
                    UserWarning,
                    stacklevel=2,
                )
        weights = mask.to(torch.float32).unsqueeze(-1)
        pooled = (embeds.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, H)
        return pooled * torch.rsqrt(pooled.pow(2).mean(-1, keepdim=True) + 1e-6)

"""`SkillRouterLayer`: all skills of one module concatenated along the rank axis, mixed by gates.

`y = W0 x + Σ_i g_i B_i A_i x` is computed as one matmul into the concatenated rank space, the gates expanded to the
rank slots, and one matmul out, so the cost stays nearly flat as skills are added (no loop over skills).

With `task_rank > 0` (the hybrid) a task LoRA trained jointly with the router is added on top:
`y += (task_alpha / task_rank) · B_t A_t x`, B_t zero-initialised so that training starts from the router alone.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners._buffer_dict import BufferDict
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from peft.utils.other import transpose
from torch import nn

from .router import RoutingState, get_router, mergeable_kinds, routing_weights


class SkillRouterLayer(BaseTunerLayer):
    # Trainable per-adapter containers: the router's gate for this layer. Skill factors are frozen, non-persistent
    # buffers, so the router checkpoint holds router weights only and `print_trainable_parameters` counts the router.
    adapter_layer_names = ("skill_router_gate", "skill_router_task_A", "skill_router_task_B")
    other_param_names = (
        "skills_A", "skills_B", "skill_slots", "router_kind", "routing", "skill_names", "task_scale", "task_dropout",
    )  # fmt: skip

    def __init__(self, base_layer: nn.Module, **kwargs: Any) -> None:
        self.base_layer = base_layer
        self.skill_router_gate = nn.ModuleDict({})
        # The hybrid's task LoRA (only for adapters with task_rank > 0), laid out like peft's lora_A / lora_B.
        self.skill_router_task_A = nn.ModuleDict({})
        self.skill_router_task_B = nn.ModuleDict({})
        self.task_scale: dict[str, float] = {}
        self.task_dropout = nn.ModuleDict({})
        self.skills_A = BufferDict({}, persistent=False)  # (K, in): all skills' A, scale folded into B
        self.skills_B = BufferDict({}, persistent=False)  # (out, K)
        self.skill_slots = BufferDict({}, persistent=False)  # (K,) skill index of each rank slot
        self.router_kind: dict[str, str] = {}
        self.routing: dict[str, dict[str, Any]] = {}
        self.skill_names: dict[str, list[str]] = {}
        self._routing_state: dict[str, RoutingState] = {}
        self._last_gates: dict[str, torch.Tensor] = {}
        self._merged_gates: dict[str, torch.Tensor] = {}
        self._fixed_mixing: dict[str, tuple[tuple, tuple, tuple]] = {}  # see `_mixing`
        self._disable_adapters = False
        self.merged_adapters = []
        self.kwargs = kwargs

        base = self.get_base_layer()
        if isinstance(base, nn.Linear):
            self.in_features, self.out_features = base.in_features, base.out_features
            self.fan_in_fan_out = False
        elif type(base).__name__ == "Conv1D":  # transformers' GPT-2 style layer stores W as (in, out)
            self.in_features, self.out_features = base.weight.shape
            self.fan_in_fan_out = True
        else:
            raise TypeError(f"Unsupported layer type {type(base).__name__}: skills can only adapt nn.Linear/Conv1D")

    def update_layer(
        self,
        adapter_name: str,
        skill_names: list[str],
        A: torch.Tensor,
        B: torch.Tensor,
        slots: torch.Tensor,
        router: str,
        routing: dict[str, Any],
        state: RoutingState,
        embed_dim: int | None,
        inference_mode: bool = False,
        task_rank: int = 0,
        task_scale: float = 0.0,
        task_dropout: float = 0.0,
    ) -> None:
        if A.shape[1] != self.in_features or B.shape[0] != self.out_features:
            raise ValueError(
                f"Skill factors of shape A{tuple(A.shape)} / B{tuple(B.shape)} do not fit a layer with "
                f"in_features={self.in_features}, out_features={self.out_features}"
            )
        n_choices = len(skill_names) + int(routing.get("null_expert", False))
        self.skill_router_gate[adapter_name] = get_router(router)(self.in_features, n_choices, embed_dim)
        self.skills_A[adapter_name] = A
        self.skills_B[adapter_name] = B
        self.skill_slots[adapter_name] = slots.long()
        self.router_kind[adapter_name] = router
        self.routing[adapter_name] = dict(routing)
        self.skill_names[adapter_name] = list(skill_names)
        self._routing_state[adapter_name] = state
        if task_rank > 0:
            task_A = nn.Linear(self.in_features, task_rank, bias=False)
            task_B = nn.Linear(task_rank, self.out_features, bias=False)
            nn.init.kaiming_uniform_(task_A.weight, a=math.sqrt(5))  # peft LoRA's init: A random, B zero
            nn.init.zeros_(task_B.weight)
            self.skill_router_task_A[adapter_name] = task_A
            self.skill_router_task_B[adapter_name] = task_B
            self.task_scale[adapter_name] = float(task_scale)
            self.task_dropout[adapter_name] = nn.Dropout(task_dropout) if task_dropout > 0 else nn.Identity()
        self._move_adapter_to_device_of_base_layer(adapter_name)
        # Router, task LoRA and skill factors now have the base layer's dtype. Like peft's LoRA, they are upcast to
        # float32 afterwards by `autocast_adapter_dtype=True` (peft's default, applied by PeftModel to every
        # ModuleDict/BufferDict of the layer) and stay in the base dtype with `autocast_adapter_dtype=False`; the
        # gate softmax is computed in float32 either way (`routing_weights`).
        self.set_adapter(self.active_adapters, inference_mode=inference_mode)

    def delete_adapter(self, adapter_name: str) -> None:
        super().delete_adapter(adapter_name)
        self.task_scale.pop(adapter_name, None)
        if adapter_name in self.task_dropout:
            del self.task_dropout[adapter_name]
        self._routing_state.pop(adapter_name, None)
        self._last_gates.pop(adapter_name, None)
        self._merged_gates.pop(adapter_name, None)
        self._fixed_mixing.pop(adapter_name, None)

    # -- routing ---------------------------------------------------------------------------------------------------
    def skill_weights(self, adapter_name: str, x: torch.Tensor) -> torch.Tensor:
        """Weights over skills for this input: (S,), (B, 1, S) or (B, T, S) depending on the router."""
        state = self._routing_state[adapter_name]
        if state.forced is not None:
            return state.forced.to(x.device)
        logits = self.skill_router_gate[adapter_name](x, state.pooled)
        routing = self.routing[adapter_name]
        return routing_weights(logits, routing["temperature"], routing["top_k"], routing["null_expert"])

    def _mixing(
        self, adapter_name: str, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, bool]:
        """(gates, gates expanded to the rank slots or None, A, the B they multiply, whether the task LoRA is in A/B).

        Gates that cannot change from one forward to the next (a static router's, forced weights, a sequence router's
        within one generation) are computed once and, when one set serves the whole batch, folded into B, and the
        hybrid's task LoRA is appended to A and B (scale folded in): decoding then runs two matmuls per layer and
        token instead of the routing ops and the task LoRA's own two. The rank slots of skills that no row uses (gate
        0 under `top_k`, a null expert or forced weights) are left out, so many skills under `top_k` cost what the
        chosen ones cost. With gates per row (a sequence router over a batch of prompts) the task LoRA still joins A
        and B, its slots' gate 1 and its scale in B. Reused only in eval mode without autograd, and only while
        the gate and task parameters, the prompt, forced weights and factors are the same objects at the same
        versions (an optimizer step, `load_state_dict` or `.to()` invalidates it; the gate's parameter objects are
        listed again whenever the cache misses).
        """
        A, B = self.skills_A[adapter_name], self.skills_B[adapter_name]
        state = self._routing_state[adapter_name]
        gate = self.skill_router_gate[adapter_name]
        # Under torch.compile the gates are computed in the graph: the reuse check is Python state that dynamo would
        # guard on and recompile for, and inductor fuses the routing ops anyway.
        reusable = not (self.training or torch.is_grad_enabled() or torch.compiler.is_compiling()) and (
            state.forced is not None or gate.ignores_layer_input
        )
        if not reusable:
            weights = self.skill_weights(adapter_name, x)
            return weights, weights.index_select(-1, self.skill_slots[adapter_name]).to(B.dtype), A, B, False
        task = self._foldable_task(adapter_name, A.dtype)
        cached = self._fixed_mixing.get(adapter_name)
        params = cached[2] if cached is not None and cached[2][0] is gate else None
        if params is not None and self._mixing_key(adapter_name, params, task)[0] == cached[0][0]:
            return cached[1]
        params = (gate, *gate.parameters())
        key = self._mixing_key(adapter_name, params, task)  # (values, the tensors they name: held with the entry)
        weights = self.skill_weights(adapter_name, x)
        slot_w = weights.index_select(-1, self.skill_slots[adapter_name]).to(B.dtype)
        live = slot_w.reshape(-1, slot_w.shape[-1]).ne(0).any(0)  # slots some row's gates use
        if not bool(live.all()):  # top_k or a null expert left skills at 0: drop their slots from both matmuls
            kept = live.nonzero().squeeze(-1)
            A, B, slot_w = A.index_select(0, kept), B.index_select(1, kept), slot_w.index_select(-1, kept)
        # The task LoRA joins the same rank space with gate 1, its scale in B: y += [B, s B_t] diag([g, 1]) [A; A_t] x
        if task is not None:
            A = torch.cat([A, task[0].weight])
            B = torch.cat([B, task[1].weight * self.task_scale[adapter_name]], dim=1)
            slot_w = torch.cat([slot_w, slot_w.new_ones((*slot_w.shape[:-1], task[0].weight.shape[0]))], dim=-1)
        if slot_w.dim() == 1 or slot_w.shape[0] == 1:  # one set of gates for every row: fold it into B
            mixing = (weights, None, A, B * slot_w.reshape(-1), task is not None)
        else:
            mixing = (weights, slot_w, A, B, task is not None)
        self._fixed_mixing[adapter_name] = (key, mixing, params)
        return mixing

    def _foldable_task(self, adapter_name: str, dtype: torch.dtype) -> tuple[nn.Linear, nn.Linear] | None:
        """The hybrid's task LoRA when it can join the skills' matmuls: eval-mode dropout and the factors' dtype."""
        if adapter_name not in self.skill_router_task_A:
            return None
        task_A, task_B = self.skill_router_task_A[adapter_name], self.skill_router_task_B[adapter_name]
        if self.task_dropout[adapter_name].training or task_A.weight.dtype != dtype or task_B.weight.dtype != dtype:
            return None
        return task_A, task_B

    def _mixing_key(self, adapter_name: str, params: tuple, task: tuple[nn.Linear, nn.Linear] | None) -> tuple:
        """What the reused mixing depends on: each tensor's id and version (the cache entry holds the tensors, so an id
        cannot be reused while it is compared) and the routing settings; a tuple of plain values, compared at C speed.
        """
        state, A, B = self._routing_state[adapter_name], self.skills_A[adapter_name], self.skills_B[adapter_name]
        tensors = [state.forced if state.forced is not None else state.pooled, A, B, *params[1:]]
        if task is not None:
            tensors += [task[0].weight, task[1].weight]
        key = tuple(v for t in tensors for v in ((id(t), t._version) if t is not None else (None, None)))
        scale = self.task_scale[adapter_name] if task is not None else None
        return (*key, state.forced is not None, scale, *self.routing[adapter_name].values()), tensors

    def _mergeable_gates(self, adapter_name: str) -> torch.Tensor:
        """The input-independent skill weights of a mergeable router (or forced weights); others cannot merge."""
        if not self.skill_router_gate[adapter_name].mergeable and self._routing_state[adapter_name].forced is None:
            raise ValueError(
                f"Only {mergeable_kinds()} (or forced skill weights) can be merged; this layer uses router="
                f"{self.router_kind[adapter_name]!r}, whose weights depend on the input"
            )
        return self.skill_weights(adapter_name, self.skills_A[adapter_name]).detach()

    def get_delta_weight(self, adapter_name: str) -> torch.Tensor:
        """ΔW = B diag(g) A (+ the task LoRA's s B_t A_t) for a mergeable router, whose gates do not depend on the
        input."""
        return self._delta_from_weights(adapter_name, self._mergeable_gates(adapter_name))

    def _delta_from_weights(self, adapter_name: str, weights: torch.Tensor) -> torch.Tensor:
        slot_w = weights.index_select(-1, self.skill_slots[adapter_name]).to(self.skills_B[adapter_name].dtype)
        delta = (self.skills_B[adapter_name] * slot_w) @ self.skills_A[adapter_name]
        if adapter_name in self.skill_router_task_A:
            task = self.skill_router_task_B[adapter_name].weight @ self.skill_router_task_A[adapter_name].weight
            delta = delta + (task * self.task_scale[adapter_name]).detach().to(delta.dtype)
        return transpose(delta, self.fan_in_fan_out)

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        for name in check_adapters_to_merge(self, adapter_names):
            if name not in self.skill_router_gate:
                continue
            base = self.get_base_layer()
            gates = self._mergeable_gates(name)
            delta = self._delta_from_weights(name, gates).to(base.weight.dtype)
            if safe_merge:
                merged = base.weight.data + delta
                if not torch.isfinite(merged).all():
                    raise ValueError(f"NaNs or infs detected in the merged weights of skill router {name!r}")
                base.weight.data = merged
            else:
                base.weight.data += delta
            # Unmerge subtracts what was merged, even if the forced weights that were merged are gone by then.
            self._merged_gates[name] = gates.clone()
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            gates = self._merged_gates.pop(name, None)
            if name in self.skill_router_gate:
                base = self.get_base_layer()
                delta = self.get_delta_weight(name) if gates is None else self._delta_from_weights(name, gates)
                base.weight.data -= delta.to(base.weight.dtype)

    def supports_lora_conversion(self, adapter_name: str = "default") -> bool:
        return adapter_name in self.skill_router_gate and self.skill_router_gate[adapter_name].mergeable


class Linear(nn.Module, SkillRouterLayer):
    def __init__(self, base_layer: nn.Module, adapter_name: str, **kwargs: Any) -> None:
        super().__init__()
        SkillRouterLayer.__init__(self, base_layer)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, **kwargs)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return result
        previous_dtype = result.dtype
        for name in self.active_adapters:
            if name not in self.skill_router_gate or self._routing_state[name].probing:  # probe: the base alone
                continue
            weights, slot_w, A, B, task_folded = self._mixing(name, x)  # slot_w None: gates folded into B
            self._last_gates[name] = weights.detach() if weights.requires_grad else weights
            z = F.linear(x.to(A.dtype), A)  # (B, T, K): every skill's rank space at once
            # Added in the factors' dtype (float32 by default, as peft's autocast_adapter_dtype does for LoRA) and
            # rounded once: bf16 partial sums would round differently for cached and uncached decoding.
            delta = F.linear(z if slot_w is None else z * slot_w, B)
            if name in self.skill_router_task_A and not task_folded:
                task_A, task_B = self.skill_router_task_A[name], self.skill_router_task_B[name]
                h = task_A(self.task_dropout[name](x).to(task_A.weight.dtype))
                delta = delta + task_B(h).to(delta.dtype) * self.task_scale[name]
            result = (result + delta).to(previous_dtype)
        return result

    def __repr__(self) -> str:
        return "skill_router." + super().__repr__()

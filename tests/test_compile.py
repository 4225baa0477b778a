"""torch.compile over a routed model: one graph per shape (no graph breaks), the eager model's tokens and logits, and
no stale routing baked into the graph (the eager path's reused gates are Python state, skipped under compile)."""

from __future__ import annotations

import torch

from .conftest import VOCAB
from .test_hybrid import make_hybrid


def greedy(model, prompt: torch.Tensor, steps: int = 5) -> tuple[list[int], torch.Tensor]:
    """Greedy tokens with the KV cache, and the logits of every step."""
    with torch.no_grad():
        out = model(input_ids=prompt, use_cache=True)
        cache, scores, tokens = out.past_key_values, [out.logits[:, -1]], []
        for _ in range(steps):
            token = scores[-1].argmax(-1, keepdim=True)
            tokens.append(int(token))
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            scores.append(out.logits[:, -1])
    return tokens, torch.cat(scores)


def test_compiled_hybrid_decodes_like_eager(tiny_assets):
    model = make_hybrid(tiny_assets, "sequence", task_rank=2)
    prompt = torch.randint(3, VOCAB, (1, 7), generator=torch.Generator().manual_seed(4))
    eager_tokens, eager_scores = greedy(model, prompt)
    inner = model.get_base_model()
    eager_forward = inner.forward
    torch._dynamo.reset()
    inner.forward = torch.compile(eager_forward, fullgraph=True)  # fullgraph: a graph break raises
    try:
        tokens, scores = greedy(model, prompt)
        assert tokens == eager_tokens
        torch.testing.assert_close(scores, eager_scores, rtol=1e-4, atol=1e-4)
        # the gates are computed in the graph from the current parameters: a changed router changes the output
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "skill_router_gate" in name and name.endswith("bias"):
                    param.add_(torch.linspace(-3, 3, param.numel()).reshape(param.shape))
        _, changed = greedy(model, prompt)
        inner.forward = eager_forward
        _, changed_eager = greedy(model, prompt)
        torch.testing.assert_close(changed, changed_eager, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(changed, scores, atol=1e-3)
    finally:
        inner.forward = eager_forward
        torch._dynamo.reset()

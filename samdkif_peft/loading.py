"""Loading helpers that make sure SKILL_ROUTER is registered and turn peft's bare KeyError into advice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .tuner.registration import SkillPeftType


REGISTRATION_HINT = (
    "PEFT type SKILL_ROUTER is not registered with peft. peft has no plugin discovery: `import samdkif_peft` before "
    "PeftModel.from_pretrained / AutoPeftModelForCausalLM.from_pretrained / AutoModelForCausalLM.from_pretrained."
)


@contextmanager
def registration_hint() -> Iterator[None]:
    """Re-raise peft's `KeyError('SKILL_ROUTER')` with what to do about it."""
    try:
        yield
    except KeyError as err:
        if err.args and str(err.args[0]) in (SkillPeftType.SKILL_ROUTER.value, str(SkillPeftType.SKILL_ROUTER)):
            raise KeyError(REGISTRATION_HINT) from err
        raise


def load_router(router: str, model: Any | None = None, **kwargs: Any):
    """`PeftModel.from_pretrained(model, router)`; `AutoPeftModelForCausalLM.from_pretrained(router)` without model."""
    from peft import AutoPeftModelForCausalLM, PeftModel

    with registration_hint():
        if model is None:
            return AutoPeftModelForCausalLM.from_pretrained(router, **kwargs)
        return PeftModel.from_pretrained(model, router, **kwargs)

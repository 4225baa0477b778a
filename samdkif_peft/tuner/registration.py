"""Register the out-of-tree PEFT type `SKILL_ROUTER` with peft (see docs/PEFT_INTERNALS.md §1.3).

peft's `register_peft_method` only accepts members of its closed `PeftType` enum, so we write into the same three
mapping dicts it fills. The type is a `str` enum so that the plain string read from `adapter_config.json` finds the
entry, and transformers can still call `.value` on it.
"""

from __future__ import annotations

import enum
import os

import peft.mapping


class SkillPeftType(str, enum.Enum):
    SKILL_ROUTER = "SKILL_ROUTER"


PREFIX = "skill_router_"


def register_skill_router(config_cls: type, model_cls: type) -> None:
    """Idempotently register `SKILL_ROUTER`; refuse a prefix that another method already uses."""
    peft_type = SkillPeftType.SKILL_ROUTER
    if model_cls.prefix != PREFIX:
        raise ValueError(f"{model_cls.__name__}.prefix must be {PREFIX!r}, got {model_cls.prefix!r}")
    registered = peft.mapping.PEFT_TYPE_TO_TUNER_MAPPING.get(peft_type)
    if registered is not None and registered.__qualname__ == model_cls.__qualname__:
        # Re-import (e.g. importlib.reload): replace our own entries, never someone else's.
        pass
    elif registered is not None:
        raise ValueError(f"PEFT type {peft_type.value} is already registered by {registered!r}")
    else:
        owners = {t for t, p in peft.mapping.PEFT_TYPE_TO_PREFIX_MAPPING.items() if p == PREFIX and t != peft_type}
        if owners:
            raise ValueError(f"Prefix {PREFIX!r} is already used by PEFT type(s) {sorted(map(str, owners))}")
    peft.mapping.PEFT_TYPE_TO_CONFIG_MAPPING[peft_type] = config_cls
    peft.mapping.PEFT_TYPE_TO_TUNER_MAPPING[peft_type] = model_cls
    peft.mapping.PEFT_TYPE_TO_PREFIX_MAPPING[peft_type] = PREFIX


def is_registered() -> bool:
    return SkillPeftType.SKILL_ROUTER in peft.mapping.PEFT_TYPE_TO_TUNER_MAPPING


def guard_push_to_hub() -> None:
    """Make `PeftModel.push_to_hub` refuse skill routers whose skills are local folders (`check_pushable`).

    peft has no hook for this, and its push saves to a temporary folder first, so the check wraps the method; other
    adapters pass straight through. Idempotent.
    """
    import functools

    from peft import PeftModel

    original = PeftModel.push_to_hub
    if getattr(original, "_samdkif_guarded", False):
        return

    @functools.wraps(original)
    def push_to_hub(self, *args, **kwargs):
        from ..skills.bank import check_pushable
        from .config import SkillRouterConfig

        for name, config in getattr(self, "peft_config", {}).items():
            if isinstance(config, SkillRouterConfig):
                check_pushable(config, name)
        return original(self, *args, **kwargs)

    push_to_hub._samdkif_guarded = True
    PeftModel.push_to_hub = push_to_hub


def hook_router_cards() -> None:
    """Make `PeftModel.save_pretrained` turn peft's generic model card into a skill router's card (`hub.router_card`).

    peft writes the card before the weights and the config, and the card shows both, so it is refreshed after the
    whole save; other adapters pass straight through. Idempotent.
    """
    import functools
    import inspect

    from peft import PeftModel

    original = PeftModel.save_pretrained
    if getattr(original, "_samdkif_guarded", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def save_pretrained(self, *args, **kwargs):
        original(self, *args, **kwargs)
        call = signature.bind(self, *args, **kwargs)
        call.apply_defaults()
        if not call.arguments["is_main_process"]:
            return
        from ..hub.router_card import refresh_router_card
        from .config import SkillRouterConfig

        save_directory = os.fspath(call.arguments["save_directory"])
        for name in call.arguments["selected_adapters"] or list(self.peft_config):
            if isinstance(self.peft_config[name], SkillRouterConfig):
                refresh_router_card(save_directory if name == "default" else os.path.join(save_directory, name))

    save_pretrained._samdkif_guarded = True
    PeftModel.save_pretrained = save_pretrained


def explain_hub_failure(err: BaseException, what: str) -> str | None:
    """A one-line reason when `err` (or what caused it) is an unreachable Hub or a missing repo; None otherwise."""
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

    try:
        from httpx2 import TransportError
    except ImportError:  # an older huggingface_hub on requests/httpx
        TransportError = OSError  # noqa: N806
    seen, cause = set(), err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, (TransportError, LocalEntryNotFoundError, OfflineModeIsEnabled)):
            return (
                f"{what}: the Hub at {constants.ENDPOINT} could not be reached and the file is not in the local cache "
                f"({type(cause).__name__}). Check HF_ENDPOINT (now {constants.ENDPOINT!r}) and the network, or pass "
                "a local folder."
            )
        if isinstance(cause, RepositoryNotFoundError):
            return f"{what}: no such repo on the Hub at {constants.ENDPOINT}; check the repo id, token and HF_ENDPOINT"
        cause = cause.__cause__ or cause.__context__
    return None


def guard_hub_errors() -> None:
    """peft answers an unreachable Hub with "Can't find 'adapter_config.json' at 'me/router'"; say what happened and
    which endpoint was tried instead. Wraps `PeftConfig._get_peft_type`/`from_pretrained`; idempotent."""
    import functools

    from peft.config import PeftConfigMixin

    for attr in ("_get_peft_type", "from_pretrained"):
        original = PeftConfigMixin.__dict__[attr].__func__
        if getattr(original, "_samdkif_guarded", False):
            continue

        def make(fn):
            @functools.wraps(fn)
            def wrapper(cls, pretrained_model_name_or_path, *args, **kwargs):
                try:
                    return fn(cls, pretrained_model_name_or_path, *args, **kwargs)
                except Exception as err:  # noqa: BLE001 - re-raised unchanged unless it is a Hub failure
                    what = f"Can't load the adapter config of {pretrained_model_name_or_path!r}"
                    reason = explain_hub_failure(err, what)
                    if reason is None:
                        raise
                    raise ValueError(reason) from err

            wrapper._samdkif_guarded = True
            return classmethod(wrapper)

        setattr(PeftConfigMixin, attr, make(original))

"""The SKILL_ROUTER PEFT method, laid out like peft's own tuners."""

from .config import SkillRouterConfig
from .layer import Linear, SkillRouterLayer
from .model import SkillRouterModel
from .registration import PREFIX, SkillPeftType, guard_hub_errors, guard_push_to_hub, register_skill_router
from .router import RoutingState, SequenceRouter, StaticRouter, TokenRouter


register_skill_router(SkillRouterConfig, SkillRouterModel)
guard_push_to_hub()
guard_hub_errors()

__all__ = [
    "PREFIX",
    "Linear",
    "RoutingState",
    "SequenceRouter",
    "SkillPeftType",
    "SkillRouterConfig",
    "SkillRouterLayer",
    "SkillRouterModel",
    "StaticRouter",
    "TokenRouter",
    "register_skill_router",
]

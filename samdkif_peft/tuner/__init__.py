"""The SKILL_ROUTER PEFT method, laid out like peft's own tuners."""

from .config import SkillRouterConfig
from .layer import Linear, SkillRouterLayer
from .model import SkillRouterModel
from .registration import (
    PREFIX,
    SkillPeftType,
    guard_hub_errors,
    guard_push_to_hub,
    hook_router_cards,
    register_skill_router,
)
from .router import (
    ROUTERS,
    Router,
    RoutingState,
    SequenceRouter,
    StaticRouter,
    TokenRouter,
    get_router,
    register_router,
)


register_skill_router(SkillRouterConfig, SkillRouterModel)
guard_push_to_hub()
hook_router_cards()
guard_hub_errors()

__all__ = [
    "PREFIX",
    "ROUTERS",
    "Linear",
    "Router",
    "RoutingState",
    "SequenceRouter",
    "SkillPeftType",
    "SkillRouterConfig",
    "SkillRouterLayer",
    "SkillRouterModel",
    "StaticRouter",
    "TokenRouter",
    "get_router",
    "register_router",
    "register_skill_router",
]

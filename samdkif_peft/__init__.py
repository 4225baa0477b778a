"""samdkif_peft: SA-MDKIF medical skills and the SKILL_ROUTER PEFT method for peft.

`import samdkif_peft` registers the PEFT type `SKILL_ROUTER` with peft. peft has no plugin discovery, so this import
must come before `PeftModel.from_pretrained`, `AutoPeftModelForCausalLM.from_pretrained` or transformers'
`from_pretrained`/`load_adapter` of a router.
"""

from .loading import load_router, registration_hint
from .task_router import TaskRouterResult, train_task_router
from .tuner import SkillPeftType, SkillRouterConfig, SkillRouterLayer, SkillRouterModel


__version__ = "0.1.0.dev0"

__all__ = [
    "SkillPeftType",
    "SkillRouterConfig",
    "SkillRouterLayer",
    "SkillRouterModel",
    "TaskRouterResult",
    "__version__",
    "load_router",
    "registration_hint",
    "train_task_router",
]

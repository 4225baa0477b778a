"""Training for SA-MDKIF with the stock `Trainer`: skill adapters (`train_skill`) and skill routers (`train_router`).

`DataCollatorForCompletion` turns records into `prompt + target + eos` with the loss on the answer only, and
`AdaLoraAllocateCallback` runs AdaLoRA's rank allocation, which the Trainer never calls itself.
"""

from ..tuner.config import default_gate_scope
from .callbacks import AdaLoraAllocateCallback, AdaLoraCheckpointCallback
from .collators import DataCollatorForCompletion, encode_completions, tokenize_dataset
from .common import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_ROUTER_MAX_LENGTH,
    ROUTER_TRAINING_DEFAULTS,
    SKILL_TRAINING_DEFAULTS,
    router_training_defaults,
)
from .fit_weights import SkillWeightFit, fit_skill_weights
from .train_router import DEFAULT_SKILL_PRIOR_RECORDS, skill_prior, train_router
from .train_skill import DEFAULT_TARGET_MODULES, default_skill_config, train_skill


__all__ = [
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_ROUTER_MAX_LENGTH",
    "DEFAULT_SKILL_PRIOR_RECORDS",
    "DEFAULT_TARGET_MODULES",
    "ROUTER_TRAINING_DEFAULTS",
    "SKILL_TRAINING_DEFAULTS",
    "AdaLoraAllocateCallback",
    "AdaLoraCheckpointCallback",
    "DataCollatorForCompletion",
    "SkillWeightFit",
    "default_gate_scope",
    "default_skill_config",
    "encode_completions",
    "fit_skill_weights",
    "router_training_defaults",
    "skill_prior",
    "tokenize_dataset",
    "train_router",
    "train_skill",
]

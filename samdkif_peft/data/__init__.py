"""Medical skill and task data for SA-MDKIF, built offline from real sources inside pinned registry packages.

    from samdkif_peft.data import SKILLS, TASKS, load_skill, load_task
    load_skill("entity_synonymy")        # DatasetDict(train / validation / test)
    load_task("elixhauser_comorbidity")

Build first with `samdkif data build`; turn records into model text with `templates.format_example`.
"""

from samdkif_peft.data.build import DataBuildConfig, build, load_skill, load_task
from samdkif_peft.data.skills import SKILL_NAMES, SKILLS, SkillSpec
from samdkif_peft.data.tasks import TASK_NAMES, TASKS, TaskSpec
from samdkif_peft.data.templates import format_example, format_messages, format_prompt


__all__ = [
    "SKILLS",
    "SKILL_NAMES",
    "TASKS",
    "TASK_NAMES",
    "DataBuildConfig",
    "SkillSpec",
    "TaskSpec",
    "build",
    "format_example",
    "format_messages",
    "format_prompt",
    "load_skill",
    "load_task",
]

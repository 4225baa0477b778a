"""Your own medical task in one call: read and check the data, train a router over the skills, score it against the
base model (and a task LoRA), and report (`train_task_router`; CLI `samdkif router train`)."""

from .inputs import TaskDataError, check_splits, parse_columns, read_split
from .kinds import KINDS, detect_kind, task_spec
from .retrieval import RetrievalMemory, add_retrieved_examples
from .run import TaskRouterResult, train_task_router


__all__ = [
    "KINDS",
    "RetrievalMemory",
    "TaskDataError",
    "TaskRouterResult",
    "add_retrieved_examples",
    "check_splits",
    "detect_kind",
    "parse_columns",
    "read_split",
    "task_spec",
    "train_task_router",
]

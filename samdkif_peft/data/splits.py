"""Entity-hash splits (docs/DATA.md, "Splits and leakage"): a key lands in the same bucket in every skill and task."""

from __future__ import annotations

import hashlib


DEFAULT_SALT = "samdkif-v1"
# bucket = sha1(salt:key) % 100. Skills train on 0-59; routers on 63-81; 85-99 is never trained on by anything.
BUCKETS: dict[str, range] = {
    "skill_train": range(0, 60),
    "skill_validation": range(60, 63),
    "task_train": range(63, 82),
    "task_validation": range(82, 85),
    "test": range(85, 100),
}
TRAINING_SPLITS = ("skill_train", "skill_validation", "task_train", "task_validation")


def bucket(key: str, salt: str = DEFAULT_SALT) -> int:
    """Stable 0-99 bucket of an entity key (sha1, never Python's salted `hash()`)."""
    return int(hashlib.sha1(f"{salt}:{key}".encode()).hexdigest(), 16) % 100


def split_of(key: str, salt: str = DEFAULT_SALT) -> str:
    b = bucket(key, salt)
    for name, buckets in BUCKETS.items():
        if b in buckets:
            return name
    raise ValueError(f"bucket {b} of key {key!r} is in no split; BUCKETS must cover 0-99")


def order_key(seed: str, uid: str) -> str:
    """Seeded, platform-independent order of candidate records (used to cap and to draw fixed-size tests)."""
    return hashlib.sha1(f"{seed}:{uid}".encode()).hexdigest()

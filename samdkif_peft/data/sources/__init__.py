"""Raw records from each pinned source package: parsing only, no templates, no splits.

Each module exposes `read(wheel, report) -> <records>`; a record that cannot be parsed is counted in the
`SourceReport` under its source (package and file) and logged, never silently dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field


logger = logging.getLogger(__name__)


@dataclass
class SourceReport:
    """Per-source counts of records read and records rejected as malformed (with a few examples)."""

    read: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def ok(self, source: str, n: int = 1) -> None:
        self.read[source] = self.read.get(source, 0) + n

    def bad(self, source: str, why: str) -> None:
        self.malformed[source] = self.malformed.get(source, 0) + 1
        shown = self.examples.setdefault(source, [])
        if len(shown) < 3:
            shown.append(why[:200])

    def log(self) -> None:
        for source in sorted(set(self.read) | set(self.malformed)):
            n_bad = self.malformed.get(source, 0)
            level = logging.WARNING if n_bad else logging.INFO
            logger.log(
                level,
                "%s: %d records read, %d malformed%s",
                source,
                self.read.get(source, 0),
                n_bad,
                f" (e.g. {self.examples[source]})" if n_bad else "",
            )

    def as_dict(self) -> dict:
        return {
            s: {"read": self.read.get(s, 0), "malformed": self.malformed.get(s, 0)}
            for s in sorted(set(self.read) | set(self.malformed))
        }

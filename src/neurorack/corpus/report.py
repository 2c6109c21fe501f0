"""What a corpus build did (:class:`BuildReport`, returned by :func:`~neurorack.corpus.build.build_corpus`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BuildReport:
    """What a build did.

    Counts are over the source files of this run and add up to ``sources``:
    ``added + duplicates + newly_skipped + refreshed + unchanged``.

    Attributes:
        out: the corpus folder.
        sources: source files considered.
        added: new sounds.
        duplicates: sources whose sound was already in the corpus (recorded, not stored twice).
        newly_skipped: sources processed in this run and skipped.
        refreshed: changed sources that gave the same sound as before.
        unchanged: sources not reprocessed (same path, size and mtime as last time).
        removed: sources recorded under a scanned folder that no longer exist there.
        sounds: sounds in the corpus after the build.
        splits: sounds per split after the build.
        skipped: ``(source path, reason)`` of every scanned source currently skipped (this run or before).
        reasons: skip kind -> count, over ``skipped``.
        seconds: wall-clock duration.
        jobs: worker processes used (1 = in-process).
    """

    out: Path
    sources: int = 0
    added: int = 0
    duplicates: int = 0
    newly_skipped: int = 0
    refreshed: int = 0
    unchanged: int = 0
    removed: int = 0
    sounds: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    jobs: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, skipped as ``{"path", "reason"}`` objects)."""
        data = asdict(self)
        data["out"] = str(self.out)
        data["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        data["seconds"] = round(self.seconds, 3)
        return data

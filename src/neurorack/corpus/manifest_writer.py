"""Recording a build in the manifest: which sources to process, their outcomes, duplicates, orphans, summary.

Runs in the main process only; outcomes are applied in batched transactions, so an
interrupted build keeps what is done and the next run resumes from there.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from neurorack.corpus.manifest import SPLITS, audio_relpath, descriptors_relpath, split_for
from neurorack.corpus.process import SourceOutcome
from neurorack.corpus.report import BuildReport
from neurorack.corpus.scan import Candidate

#: Outcomes are committed in one transaction per this many, or after this many seconds.
_BATCH_SIZE = 32
_BATCH_SECONDS = 2.0


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (the manifest's and corpus.json's timestamps)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class ManifestWriter:
    """Applies outcomes to the manifest (main process only), in batched transactions."""

    def __init__(self, conn: sqlite3.Connection, out: Path, report: BuildReport) -> None:
        self.conn = conn
        self.out = out
        self.report = report
        self.pending: list[tuple[Candidate, SourceOutcome]] = []
        self.last_flush = time.monotonic()
        self.orphans: set[str] = set()

    # planning ------------------------------------------------------------------------------
    def plan(self, candidates: list[Candidate], roots: list[str]) -> list[Candidate]:
        """Release vanished sources, refresh labels/licences of unchanged ones; return what to process."""
        rows = {
            path: (size, mtime_ns, status, digest, label, licence)
            for path, size, mtime_ns, status, digest, label, licence in self.conn.execute(
                "SELECT path, size, mtime_ns, status, hash, label, licence FROM sources"
            )
        }
        current = {c.path for c in candidates}
        todo: list[Candidate] = []
        with self.conn:
            prefixes = tuple(root.rstrip(os.sep) + os.sep for root in roots)
            for path in rows:
                if path not in current and prefixes and path.startswith(prefixes):
                    self._release(path)
                    self.report.removed += 1
            for cand in candidates:
                row = rows.get(cand.path)
                if row is None or cand.size < 0 or (row[0], row[1]) != (cand.size, cand.mtime_ns):
                    todo.append(cand)
                    continue
                status, digest = row[2], row[3]
                if status != "skipped" and not self._files_present(digest):
                    todo.append(cand)
                    continue
                self.report.unchanged += 1
                if (row[4], row[5]) != (cand.label, cand.licence):
                    self.conn.execute(
                        "UPDATE sources SET label = ?, licence = ? WHERE path = ?",
                        (cand.label, cand.licence, cand.path),
                    )
                    self.conn.execute(
                        "UPDATE sounds SET label = ?, licence = ? WHERE source = ?",
                        (cand.label, cand.licence, cand.path),
                    )
        return todo

    def _files_present(self, digest: str | None) -> bool:
        return bool(digest) and (
            (self.out / audio_relpath(str(digest))).is_file()
            and (self.out / descriptors_relpath(str(digest))).is_file()
        )

    # recording -----------------------------------------------------------------------------
    def record(self, cand: Candidate, outcome: SourceOutcome) -> None:
        self.pending.append((cand, outcome))
        if len(self.pending) >= _BATCH_SIZE or time.monotonic() - self.last_flush > _BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            with self.conn:
                for cand, outcome in self.pending:
                    self._apply(cand, outcome)
            self.pending.clear()
        self.last_flush = time.monotonic()

    def _apply(self, cand: Candidate, outcome: SourceOutcome) -> None:
        now = utc_now()
        previous = self._release(cand.path)
        if not outcome.ok:
            self.conn.execute(
                "INSERT INTO sources (path, size, mtime_ns, status, hash, kind, reason, label, licence, updated) "
                "VALUES (?, ?, ?, 'skipped', NULL, ?, ?, ?, ?, ?)",
                (cand.path, cand.size, cand.mtime_ns, outcome.kind, outcome.reason, cand.label, cand.licence, now),
            )
            self.report.newly_skipped += 1
            return
        digest = outcome.hash
        owner = self.conn.execute("SELECT source FROM sounds WHERE hash = ?", (digest,)).fetchone()
        status, reason = "ok", ""
        if owner is None:
            self.conn.execute(
                "INSERT INTO sounds (hash, split, source, duration, samples, frames, label, licence, peak, added) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    digest,
                    split_for(digest),
                    cand.path,
                    outcome.duration,
                    outcome.samples,
                    outcome.frames,
                    cand.label,
                    cand.licence,
                    outcome.peak,
                    now,
                ),
            )
        elif cand.path < owner[0]:
            # the smallest path owns a sound, so the result does not depend on completion order
            self.conn.execute(
                "UPDATE sounds SET source = ?, label = ?, licence = ? WHERE hash = ?",
                (cand.path, cand.label, cand.licence, digest),
            )
            self.conn.execute(
                "UPDATE sources SET status = 'duplicate', reason = ? WHERE path = ?",
                (_duplicate_reason(digest), owner[0]),
            )
        else:
            status, reason = "duplicate", _duplicate_reason(digest)
        self.conn.execute(
            "INSERT INTO sources (path, size, mtime_ns, status, hash, kind, reason, label, licence, updated) "
            "VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?)",
            (cand.path, cand.size, cand.mtime_ns, status, digest, reason, cand.label, cand.licence, now),
        )
        if previous == digest:
            self.report.refreshed += 1
        elif owner is None:
            self.report.added += 1
        else:
            self.report.duplicates += 1

    def _release(self, path: str) -> str | None:
        """Forget a source; its sound passes to a duplicate or is removed. Returns the source's old hash."""
        row = self.conn.execute("SELECT status, hash FROM sources WHERE path = ?", (path,)).fetchone()
        if row is None:
            return None
        status, digest = row
        self.conn.execute("DELETE FROM sources WHERE path = ?", (path,))
        if status != "ok" or not digest:
            return str(digest) if digest else None
        heir = self.conn.execute(
            "SELECT path, label, licence FROM sources WHERE hash = ? AND status = 'duplicate' ORDER BY path LIMIT 1",
            (digest,),
        ).fetchone()
        if heir is None:
            self.conn.execute("DELETE FROM sounds WHERE hash = ?", (digest,))
            self.orphans.add(str(digest))
        else:
            self.conn.execute("UPDATE sounds SET source = ?, label = ?, licence = ? WHERE hash = ?", (*heir, digest))
            self.conn.execute("UPDATE sources SET status = 'ok', reason = '' WHERE path = ?", (heir[0],))
        return str(digest)

    # finishing -----------------------------------------------------------------------------
    def delete_orphans(self) -> None:
        """Delete the files of sounds no source refers to any more (after every outcome is applied)."""
        for digest in sorted(self.orphans):
            if self.conn.execute("SELECT 1 FROM sounds WHERE hash = ?", (digest,)).fetchone():
                continue
            for rel in (audio_relpath(digest), descriptors_relpath(digest)):
                (self.out / rel).unlink(missing_ok=True)

    def summarise(self, candidates: list[Candidate]) -> None:
        report = self.report
        report.sounds = int(self.conn.execute("SELECT COUNT(*) FROM sounds").fetchone()[0])
        counts = dict(self.conn.execute("SELECT split, COUNT(*) FROM sounds GROUP BY split").fetchall())
        report.splits = {name: int(counts.get(name, 0)) for name in SPLITS}
        wanted = {c.path for c in candidates}
        rows = self.conn.execute(
            "SELECT path, kind, reason FROM sources WHERE status = 'skipped' ORDER BY path"
        ).fetchall()
        skipped = [(p, k, r) for p, k, r in rows if p in wanted]
        report.skipped = [(p, r) for p, _, r in skipped]
        report.reasons = dict(Counter(k for _, k, _ in skipped).most_common())


def _duplicate_reason(digest: str) -> str:
    return f"duplicate of sound {digest[:16]}"

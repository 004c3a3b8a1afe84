"""Handlers by job kind: what a runner knows how to do.

A handler gets the job's JSON payload and does the work. By contract it is
idempotent: a worker may die after the work but before the job is marked
done, and then the job runs again. Write effects keyed by something in the
payload (an upsert, a "send only if not acknowledged" check) so that a second
run changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Registration:
    """A handler and how its jobs are retried."""

    kind: str
    handler: Handler
    backoff_s: float = 10.0  # first retry after this, then doubling
    backoff_cap_s: float = 3600.0
    # Longest an attempt may run; then its lease is no longer renewed and the attempt
    # counts as failed (see pacs.jobs.runner): a hung handler must not hold a job forever.
    max_run_s: float = 3600.0


class HandlerRegistry:
    """Kind -> handler. Registered once at start, read by runner threads."""

    def __init__(self) -> None:
        self._by_kind: dict[str, Registration] = {}

    def register(
        self,
        kind: str,
        handler: Handler,
        *,
        backoff_s: float = 10.0,
        backoff_cap_s: float = 3600.0,
        max_run_s: float = 3600.0,
    ) -> None:
        """Run ``handler`` for jobs of ``kind``; a second registration of a kind is a bug."""
        if kind in self._by_kind:
            raise ValueError(f"a handler for job kind {kind!r} is already registered")
        if max_run_s <= 0:
            raise ValueError("max_run_s must be positive")
        self._by_kind[kind] = Registration(kind, handler, backoff_s, backoff_cap_s, max_run_s)

    def get(self, kind: str) -> Registration | None:
        return self._by_kind.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._by_kind)

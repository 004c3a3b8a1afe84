"""Rules and DICOMweb endpoints in the index database: create, read, change, delete.

Runtime configuration (DESIGN.md): every node reads the same rows. The rules an
instance trigger needs are cached for a few seconds per process, so that
routing costs an arriving instance nothing while no per-instance rule exists.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pacs.index.routing_models import RoutingEndpoint, RoutingRule
from pacs.routing.values import DuplicateRoute, Endpoint, Rule, UnknownRoute

CACHE_S = 5.0
_RULE_FIELDS = (
    "name",
    "enabled",
    "trigger",
    "calling_ae",
    "modality",
    "body_part",
    "description",
    "window_start",
    "window_end",
    "destination",
    "priority",
)
_ENDPOINT_FIELDS = ("name", "url", "auth", "username", "secret", "description", "enabled")


def _rule(row: RoutingRule) -> Rule:
    return Rule(**{f: getattr(row, f) for f in _RULE_FIELDS}, id=row.pk)


def _endpoint(row: RoutingEndpoint) -> Endpoint:
    return Endpoint(**{f: getattr(row, f) for f in _ENDPOINT_FIELDS}, id=row.pk)


class RuleBook:
    """CRUD over rules and endpoints, and a short-lived cache of the enabled rules."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._cached: list[Rule] | None = None
        self._cached_at = 0.0
        self._lock = threading.Lock()

    # -- rules --------------------------------------------------------------------------------

    def rules(self) -> list[Rule]:
        with self.sessions() as session:
            rows = session.scalars(select(RoutingRule).order_by(RoutingRule.pk)).all()
            return [_rule(row) for row in rows]

    def enabled_rules(self, trigger: str) -> list[Rule]:
        """Enabled rules of ``trigger``, at most :data:`CACHE_S` old (cheap per instance)."""
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached_at > CACHE_S:
                self._cached = [r for r in self.rules() if r.enabled]
                self._cached_at = time.monotonic()
            cached = self._cached
        return [r for r in cached if r.trigger == trigger]

    def rule(self, rule_id: int) -> Rule:
        with self.sessions() as session:
            row = session.get(RoutingRule, rule_id)
            if row is None:
                raise UnknownRoute(f"no routing rule {rule_id}")
            return _rule(row)

    def add_rule(self, value: Rule) -> Rule:
        now = datetime.now(UTC)
        row = RoutingRule(
            **{f: getattr(value, f) for f in _RULE_FIELDS}, created_at=now, updated_at=now
        )
        self._commit(row, f"a routing rule named {value.name!r} exists already")
        return replace(value, id=row.pk)

    def replace_rule(self, rule_id: int, value: Rule) -> Rule:
        self._change(RoutingRule, rule_id, {f: getattr(value, f) for f in _RULE_FIELDS})
        return replace(value, id=rule_id)

    def remove_rule(self, rule_id: int) -> None:
        self._remove(RoutingRule, rule_id, "routing rule")

    # -- endpoints ----------------------------------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        with self.sessions() as session:
            rows = session.scalars(select(RoutingEndpoint).order_by(RoutingEndpoint.name)).all()
            return [_endpoint(row) for row in rows]

    def endpoint(self, name: str) -> Endpoint:
        with self.sessions() as session:
            row = session.scalar(select(RoutingEndpoint).where(RoutingEndpoint.name == name))
            if row is None:
                raise UnknownRoute(f"no DICOMweb endpoint {name!r}")
            return _endpoint(row)

    def add_endpoint(self, value: Endpoint) -> Endpoint:
        now = datetime.now(UTC)
        row = RoutingEndpoint(
            **{f: getattr(value, f) for f in _ENDPOINT_FIELDS}, created_at=now, updated_at=now
        )
        self._commit(row, f"a DICOMweb endpoint named {value.name!r} exists already")
        return replace(value, id=row.pk)

    def replace_endpoint(self, name: str, value: Endpoint, *, keep_secret: bool) -> Endpoint:
        """Change endpoint ``name``; with ``keep_secret`` its stored secret stays."""
        current = self.endpoint(name)
        if keep_secret:
            value = replace(value, secret=current.secret)
        assert current.id is not None
        self._change(RoutingEndpoint, current.id, {f: getattr(value, f) for f in _ENDPOINT_FIELDS})
        return replace(value, id=current.id)

    def remove_endpoint(self, name: str) -> None:
        current = self.endpoint(name)
        assert current.id is not None
        self._remove(RoutingEndpoint, current.id, "DICOMweb endpoint")

    # -- shared -------------------------------------------------------------------------------

    def _commit(self, row: Any, duplicate: str) -> None:
        try:
            with self.sessions.begin() as session:
                session.add(row)
                session.flush()
                session.expunge(row)
        except IntegrityError as exc:
            raise DuplicateRoute(duplicate) from exc
        self.invalidate()

    def _change(self, model: Any, pk: int, values: dict[str, Any]) -> None:
        try:
            with self.sessions.begin() as session:
                row = session.get(model, pk)
                if row is None:
                    raise UnknownRoute(f"no {model.__tablename__.replace('_', ' ')} {pk}")
                for key, value in values.items():
                    setattr(row, key, value)
                row.updated_at = datetime.now(UTC)
        except IntegrityError as exc:
            raise DuplicateRoute(f"the name {values.get('name')!r} is taken") from exc
        self.invalidate()

    def _remove(self, model: Any, pk: int, what: str) -> None:
        with self.sessions.begin() as session:
            result = session.execute(delete(model).where(model.pk == pk))
            if not getattr(result, "rowcount", 0):
                raise UnknownRoute(f"no {what} {pk}")
        self.invalidate()

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

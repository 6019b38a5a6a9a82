"""The rule engine: watches every tag a rule names (model outputs included) as points arrive, keeps each condition's
state (on since when, the alert it raised) and raises, folds and clears alerts through the alert book. Stale-data
rules, shelving expiry and the drift check run on a one-second tick.

Like the scorer, it is fed by the historian's write listener (which only queues) and works in its own thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.timeutil import from_us
from taehwa.lab.alarms import AlarmPolicy, AlarmState
from taehwa.live.records import ConditionState
from taehwa.live.rules import Rule, rule_targets
from taehwa.tenancy.access import SYSTEM, acting_as

if TYPE_CHECKING:
    from taehwa.historian.store import Historian
    from taehwa.live.alerts import AlertBook
    from taehwa.live.drift import DriftMonitor
    from taehwa.live.rules import RuleStore
    from taehwa.live.scoring import Scorer
    from taehwa.twin.service import TwinService

log = logging.getLogger(__name__)


@dataclass
class Watch:
    """One rule on one tag (of one asset), and where its alarm stands (the lab's state machine, `AlarmState`)."""

    rule: Rule
    asset: str | None
    signal: str
    tag: str
    state: AlarmState = field(default_factory=AlarmState)
    alert_id: int | None = None
    last_t: int | None = None
    last_v: float | None = None


class RuleEngine:
    """Evaluates every enabled rule of every tenant."""

    def __init__(
        self,
        *,
        historian: Historian,
        twin: TwinService,
        rules: RuleStore,
        alerts: AlertBook,
        scorer: Scorer,
        drift: DriftMonitor,
        refresh_s: float = 2.0,
        drift_every_s: float = 60.0,
    ) -> None:
        """The historian (points it watches, latest values), the twin (targets), the rules, the alert book it
        raises in, the scorer (which deployment writes an output tag) and the drift monitor it ticks."""
        self.historian, self.twin, self.rules, self.scorer, self.drift = historian, twin, rules, scorer, drift
        self.book = alerts
        self.refresh_s = refresh_s
        self.drift_every_s = drift_every_s
        self._queue: queue.SimpleQueue[tuple[str, pa.Table]] = queue.SimpleQueue()
        self._watches: dict[tuple[str, str, str | None, str], Watch] = {}  # (tenant, rule, asset, tag)
        self._by_tag: dict[str, dict[str, list[Watch]]] = {}
        self._tag_sets: dict[str, pa.Array] = {}
        self._fingerprint: Any = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        historian.add_listener(self._on_points)

    def start(self) -> None:
        if self._thread is None:
            with acting_as(SYSTEM):
                self.refresh(force=True)
            self._thread = threading.Thread(target=self._loop, name="live-rules", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _on_points(self, tenant: str, points: pa.Table) -> None:
        if tenant in self._tag_sets:
            self._queue.put((tenant, points))

    def _loop(self) -> None:
        last_refresh = last_tick = last_drift = time.monotonic()
        while not self._stop.is_set():
            batch = []
            try:
                batch.append(self._queue.get(timeout=0.05))
                while True:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            try:
                with acting_as(SYSTEM):
                    now = time.monotonic()
                    if now - last_refresh > self.refresh_s:
                        last_refresh = now
                        self.refresh()
                    for tenant, table in batch:
                        self.evaluate(tenant, table)
                    if now - last_tick >= 1.0:
                        last_tick = now
                        self.tick()
                    if now - last_drift >= self.drift_every_s:
                        last_drift = now
                        self.drift.check_all()
            except Exception:
                log.exception("alert rules failed")

    def drain(self) -> None:
        """Evaluate what is queued now, in the caller's thread (tests)."""
        with acting_as(SYSTEM):
            while True:
                try:
                    tenant, table = self._queue.get_nowait()
                except queue.Empty:
                    break
                self.evaluate(tenant, table)

    # -- what to watch --------------------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Follow rule changes and the plant (a new asset of a type inherits the type's rules)."""
        active = self.historian.leases.active  # writers by tenant: each watches its own tenants
        rules = [r for r in self.rules.list() if r.spec.enabled and active(r.tenant)]
        tenants = sorted({r.tenant for r in rules})
        fingerprint = ([(r.tenant, r.to_dict()) for r in rules], [id(self.twin.plant(t)) for t in tenants])
        if not force and fingerprint == self._fingerprint:
            return
        with self._lock:
            old = self._watches
            watches: dict[tuple[str, str, str | None, str], Watch] = {}
            for rule in rules:
                for asset, signal, tag in rule_targets(self.twin, rule):
                    key = (rule.tenant, rule.name, asset, tag)
                    prev = old.get(key)
                    w = Watch(rule, asset, signal, tag)
                    if prev is not None and prev.rule.to_dict() == rule.to_dict():
                        w.state, w.alert_id, w.last_t, w.last_v = prev.state, prev.alert_id, prev.last_t, prev.last_v
                    watches[key] = w
            if self._fingerprint is None:  # first build: pick up alerts left open before a restart
                for row in self.book.open_alerts():
                    found = watches.get((row.tenant, row.rule, row.asset, row.tag))
                    if found is not None:
                        found.state.on, found.state.raised, found.alert_id = True, True, row.id
            by_tag: dict[str, dict[str, list[Watch]]] = {}
            for (tenant, _, _, tag), w in watches.items():
                by_tag.setdefault(tenant, {}).setdefault(tag, []).append(w)
            self._watches, self._by_tag = watches, by_tag
            self._tag_sets = {t: pa.array(sorted(tags), pa.string()) for t, tags in by_tag.items()}
            self._fingerprint = fingerprint

    # -- conditions -----------------------------------------------------------------------------------------------
    def evaluate(self, tenant: str, table: pa.Table) -> None:
        """Run the rules on written points, in time order per tag."""
        with self._lock:
            tag_set = self._tag_sets.get(tenant)
            if tag_set is None:
                return
            mine = table.filter(pc.is_in(table.column("tag"), value_set=tag_set))
            if mine.num_rows == 0:
                return
            mine = mine.sort_by([("tag", "ascending"), ("time", "ascending")])
            watches = self._by_tag[tenant]
            for tag, t, v in zip(
                mine.column("tag").to_pylist(),
                mine.column("time").cast(pa.int64()).to_pylist(),
                mine.column("value").to_pylist(),
                strict=True,
            ):
                for w in watches.get(tag, ()):
                    if w.rule.spec.kind != "stale":
                        self._point(tenant, w, t, v)

    def _point(self, tenant: str, w: Watch, t: int, v: float) -> None:
        s = w.rule.spec
        if w.last_t is not None and t <= w.last_t:
            return  # late or repeated: conditions follow data time forwards
        prev_t, prev_v = w.last_t, w.last_v
        w.last_t, w.last_v = t, v
        if s.kind == "rate":
            if prev_t is None or prev_v is None:
                return
            rate = abs(v - prev_v) / ((t - prev_t) / 1e6)
            self._advance(
                tenant,
                w,
                t,
                rate,
                AlarmPolicy(
                    limit=float(s.rate_per_s or 0),
                    hysteresis=s.hysteresis,
                    min_duration_s=s.min_duration_s,
                    quiet_s=s.quiet_s,
                ),
            )
            return
        self._advance(tenant, w, t, v, self.policy(tenant, w))

    def policy(self, tenant: str, w: Watch) -> AlarmPolicy:
        """The alarm a threshold or score rule raises: its own fields, or for a score rule without a value the
        calibrated alarm of the model that writes the tag (limit, hysteresis, on-delay, quiet period), so the alert
        is the model's event-level decision as the lab judged it."""
        s = w.rule.spec
        if s.kind == "score" and s.value is None:
            found = self.scorer.alarm_policy(tenant, w.tag)
            if found is not None:
                return found
            return AlarmPolicy(
                limit=1.0, op=s.op, hysteresis=s.hysteresis, min_duration_s=s.min_duration_s, quiet_s=s.quiet_s
            )
        return AlarmPolicy(
            limit=float(s.value if s.value is not None else 0),
            op=s.op,
            hysteresis=s.hysteresis,
            min_duration_s=s.min_duration_s,
            quiet_s=s.quiet_s,
        )

    def _advance(self, tenant: str, w: Watch, t: int, value: float, policy: AlarmPolicy) -> None:
        s = w.rule.spec
        event = w.state.value(t, value, policy)
        if event == "clear":
            if w.alert_id is not None and s.auto_resolve:
                self.book.clear(tenant, w.alert_id, f"the condition cleared at {value:g} ({from_us(t).isoformat()})")
            # without auto-resolve the alert stays open for people to resolve; a new onset folds into it
            w.alert_id = None
        elif event == "raise":
            doc = self.book.raise_alert(
                tenant,
                rule=w.rule.name,
                asset=w.asset,
                tag=w.tag,
                severity=s.severity,
                message=w.rule.describe(),
                value=value,
                chain=self._chain(tenant, w, t, value),
            )
            w.alert_id = int(doc["id"])

    def _chain(self, tenant: str, w: Watch, t: int, value: float) -> dict[str, Any]:
        """Why: the rule, the tag and signal, the data window the condition held over, and the model version
        (with the input rows it scored from) when the tag is a model's output."""
        chain: dict[str, Any] = {
            "rule": w.rule.to_dict(),
            "asset": w.asset,
            "signal": w.signal,
            "tag": w.tag,
            "condition": w.rule.describe(),
            "message": w.rule.message_key(),
            "value": value,
            "window": {
                "start": from_us(w.state.since if w.state.since is not None else t).isoformat(),
                "end": from_us(t).isoformat(),
            },
        }
        owner = self.scorer.owner(tenant, w.tag)
        if owner is not None:
            chain["model"] = owner
            chain["model_inputs"] = {
                "start": from_us(t - int(owner["history_rows"] * owner["step_s"] * 1e6)).isoformat(),
                "end": from_us(t).isoformat(),
            }
        return chain

    def tick(self, now_us: int | None = None) -> None:
        """Stale-data rules against the wall clock."""
        now = now_us if now_us is not None else time.time_ns() // 1000
        with self._lock:
            stale = [(k[0], w) for k, w in self._watches.items() if w.rule.spec.kind == "stale"]
            by_tenant: dict[str, list[Watch]] = {}
            for tenant, w in stale:
                by_tenant.setdefault(tenant, []).append(w)
            for tenant, ws in by_tenant.items():
                known = self.historian.catalog.ids(tenant)
                tags = sorted({w.tag for w in ws if w.tag in known})
                if not tags:
                    continue
                latest = self.historian.latest(tenant, tags)
                newest = dict(
                    zip(
                        latest.column("tag").to_pylist(),
                        latest.column("time").cast(pa.int64()).to_pylist(),
                        strict=True,
                    )
                )
                for w in ws:
                    t = newest.get(w.tag)
                    if t is None:
                        continue
                    age = (now - t) / 1e6
                    self._advance(
                        tenant,
                        w,
                        now,
                        age,
                        AlarmPolicy(limit=float(w.rule.spec.stale_s or 0), quiet_s=w.rule.spec.quiet_s),
                    )

    def condition(self, tenant: str, name: str) -> list[ConditionState]:
        """Where a rule's conditions stand on each of its tags (for `taehwa live rules show`)."""
        with self._lock:
            return [
                {
                    "asset": w.asset,
                    "tag": w.tag,
                    "on": w.state.on,
                    "raised": w.state.raised,
                    "since": from_us(w.state.since).isoformat() if w.state.since is not None else None,
                    "alert": w.alert_id,
                    "last_value": w.last_v,
                }
                for k, w in self._watches.items()
                if k[0] == tenant and k[1] == name
            ]

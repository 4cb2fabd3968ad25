"""The engine: durable store + online state + recommendation service, behind one lock.

Write path: validate -> append to the store (one transaction, deduplicated by event_id) ->
apply each newly stored event to the online state -> acknowledge. A restart rebuilds the
online state from the log, so nothing acknowledged is ever lost."""

from __future__ import annotations

import gc
import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import numpy as np
import pandas as pd

from pulserec.config import Settings
from pulserec.events import SESSION_PREFIX, Event
from pulserec.experiments.service import Experiments
from pulserec.models.base import Recommender, meta_of
from pulserec.models.persist import save_model
from pulserec.online import make_state
from pulserec.decay import read_clock
from pulserec.online.base import SharedState, State
from pulserec.online.redis.connection import TRANSIENT, StateUnavailable
from pulserec.online.snapshots import Snapshots
from pulserec.online.state import OnlineState
from pulserec.online.streams import make_publisher
from pulserec.recommend.aligned import AlignedModel
from pulserec.recommend.forgetting import DELETION_VERSION, Forgotten
from pulserec.recommend.jobs import Job, JobRefused, JobRegistry, Report, replay_progress
from pulserec.recommend.saved_models import (
    RANKER,
    file_meta,
    install_changed,
    installed_stamps,
    model_path,
    models_dir,
    saved_params,
)
from pulserec.recommend.search import SearchResults, search
from pulserec.recommend.service import Answer, Filters, Recommended, RecommendationService
from pulserec.recommend.training import (
    DEFAULT_BATCH_MODELS,
    apply_torch_threads,
    ranker_info,
    ranker_options,
    train_and_install,
)
from pulserec.records import ItemRecord
from pulserec.store import SQLiteStore
from pulserec.store.bulk_writer import BulkWriter
from pulserec.store.feedback import FeedbackStore
from pulserec.store.history import History
from pulserec.store.pseudonym import Pseudonymizer
from pulserec.validation import InvalidInput, check_id_len, check_n, dwell_problem

if TYPE_CHECKING:
    from pulserec.models.ranker import Ranker
    from pulserec.models.ranker_training import TrainingOptions

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A start that applied at least this many events moves its objects out of the cyclic GC's sight.
FREEZE_AFTER_EVENTS = 100_000

#: Times a training is repeated when users were deleted while it read the log (each repeat reads
#: the log afresh; a deletion during the last one is retrained at the next deletion or training).
FORGET_ROUNDS = 3

#: What a shared (Redis) state raises when it cannot answer now (down, stalled, resyncing).
STATE_UNAVAILABLE: tuple[type[BaseException], ...] = (StateUnavailable, *TRANSIENT)


class UnknownEventType(InvalidInput):
    def __init__(self, index: int | None, event_type: str, known: Iterable[str]) -> None:
        self.event_type = event_type
        super().__init__("type", f"unknown event type {event_type!r}; known types: {', '.join(sorted(known))}", index)


#: Event fields holding ids, checked against `settings.max_id_len`.
_ID_FIELDS = (("event_id", "event_id"), ("user_id", "user_id"), ("session_id", "session_id"),
              ("item_id", "item_id"), ("rec_id", "recommendation_id"))


@dataclass
class IngestResult:
    accepted: int
    duplicates: int
    event_ids: list[str]
    accepted_mask: list[bool]


class StoredNotApplied(RuntimeError):
    """The events are durably stored but the shared state could not take them now. They are
    applied later, in order, by whichever process next syncs the state with the log (within
    `state_sync_interval_s` of the state coming back); a retry with the same event ids answers
    `duplicates` and changes nothing."""

    def __init__(self, result: IngestResult, cause: BaseException, retry_after_s: int = 2) -> None:
        super().__init__(f"stored {result.accepted} events but the online state is unavailable: {cause}")
        self.result = result
        self.retry_after_s = retry_after_s


class IngestListener(Protocol):
    """Told about every ingested batch, after its new events are applied to the online state."""

    def __call__(self, accepted_by_type: Mapping[str, int], duplicates: int, latest_ts: float | None) -> None: ...


def _chunk_bounds(n: int, chunk: int, first: bool) -> list[tuple[int, int]]:
    """Chunk boundaries; a small first chunk gets the write/apply pipeline going sooner."""
    cuts = [0]
    if first and n > chunk:
        cuts.append(max(chunk // 8, 1))
    while cuts[-1] < n:
        cuts.append(min(cuts[-1] + chunk, n))
    return list(zip(cuts[:-1], cuts[1:]))


class Engine:
    def __init__(self, settings: Settings, store: SQLiteStore | None = None, progress: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self._closed = False
        self._value_rules = settings.value_rules
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = store or SQLiteStore(settings.db_path, settings.sqlite_synchronous, settings.accept_data_loss)
        self.lock = threading.RLock()
        self.state: State = make_state(settings)
        self.publisher = make_publisher(settings)
        # With a shared state and a stream, `pulserec updater` applies what this process publishes.
        self.applies_locally = not (self.publisher and self.state.shared)
        self.service = RecommendationService(self.state, settings)
        self.feedback = FeedbackStore(self.store)
        self.history = History(self.store)  # the dashboard's history and lists (after feedback: it indexes impressions)
        self.experiments = Experiments(self.feedback)
        self.pseudonym = Pseudonymizer.from_settings(settings) if settings.pseudonymize_users else None
        self.counters: Counter[str] = Counter()
        self.jobs = JobRegistry(settings.max_jobs)
        self.forgotten = Forgotten()  # deleted users that served trained models still hold
        self._trainings = 0  # `train` calls running (jobs or direct): they may install models
        #: Users deleted while a rebuild runs: one list per running rebuild, so that no rebuild
        #: resets another's (the defect of issue 13.6); the job registry runs one rebuild at a time.
        self._rebuild_deletions: list[list[tuple[str, pd.DataFrame]]] = []
        self.started_at = time.time()
        #: Observers of live ingestion (metrics, dashboards); not called for the rebuild at start-up.
        self.ingest_listeners: list[IngestListener] = []
        self.snapshots = Snapshots(settings) if settings.snapshots and not self.state.shared else None
        self._bulk_depth = 0  # bulk ingests running: their applied prefix of the log may have gaps
        self._rebuild(progress)
        if self.state.applied >= FREEZE_AFTER_EVENTS:
            # The millions of objects a start builds live as long as the process: out of the
            # collector's sight, full collections no longer walk them (at 300k events the
            # worst of 2,000 recommend calls went from 423 to 73 ms on a loaded box).
            gc.freeze()
        # (watermark of the newest snapshot, when it was taken or loaded, whether the log changed under it)
        self._snapshot_mark = (self.snapshots.latest["watermark"] if self.snapshots and self.snapshots.latest else 0,
                               time.monotonic(), False)
        self.supervisor = self._supervise()
        self.install_saved()  # serve the models saved under <data_dir>/models/
        self._forget_absent_users()

    # -- lifecycle --------------------------------------------------------------------------
    def _rebuild(self, progress: Callable[[int], None] | None = None) -> None:
        """Bring the online state up to date with the log: the newest valid snapshot and the log
        after its watermark, else a full replay."""
        loaded = self.snapshots.load(self.store) if self.snapshots is not None else None
        if loaded is None:
            self.state.restore(self.store, progress)
            return
        started = time.perf_counter()
        header = self.snapshots.latest  # type: ignore[union-attr]
        if header["catalog_version"] != self.store.head()[1]:  # items changed since: the store has them
            loaded.catalog.upsert_many(self.store.load_items())
        tail = 0
        for frame in self.store.iter_events(after_seq=header["watermark"]):
            loaded.apply_frame(frame)
            tail += len(frame)
            if progress:
                progress(len(frame))
        self.state, self.service = loaded, self.service.rebound(loaded)
        log.info("online state from snapshot %s (watermark %d) and %d later events in %.2fs",
                 Path(header["path"]).name, header["watermark"], tail, time.perf_counter() - started)

    # -- snapshots --------------------------------------------------------------------------
    def snapshot(self, background: bool = False) -> dict[str, Any] | None:
        """Write a snapshot of the online state now (None: a bulk import or another background
        snapshot is running). In the background only the fork pauses writers."""
        if self.snapshots is None:
            raise ValueError("snapshots are off (settings.snapshots) or the state is shared (Redis persists itself)")
        with self.lock:
            if self._bulk_depth:
                return None
            header = self.snapshots.header(self.state, self.store)
            if background:
                if not self.snapshots.write_in_background(self.state, header):
                    return None
                written = header
            else:
                written = self.snapshots.write(self.state, header)
            self._snapshot_mark = (header["watermark"], time.monotonic(), False)
        self.counters["snapshots.written"] += 1
        return written

    def snapshot_due(self) -> bool:
        """Whether the settings' triggers call for a snapshot now (events since, or time with changes)."""
        if self.snapshots is None:
            return False
        watermark, when, stale = self._snapshot_mark
        events = self.state.last_seq - watermark
        if not (events or stale):
            return False
        every_n, every_s = self.settings.snapshot_every_events, self.settings.snapshot_every_s
        return stale or bool(every_n and events >= every_n) or bool(every_s and time.monotonic() - when >= every_s)

    def _snapshot_stale(self) -> None:
        """The log was rewritten below the watermark (a deletion, a session merge): the
        snapshots cannot be tailed any more, so write a new one at the next chance."""
        watermark, when, _ = self._snapshot_mark
        self._snapshot_mark = (watermark, when, True)

    def _snapshot_on_close(self) -> None:
        if self.snapshots is None:
            return
        self.snapshots.wait()
        try:
            if self._snapshot_mark[0] != self.state.last_seq or self._snapshot_mark[2]:
                self.snapshot()  # a clean shutdown: the next start replays nothing
        except Exception:  # noqa: BLE001 - the log has everything; a start without it replays more
            log.exception("could not write a snapshot on shutdown")

    def _supervise(self) -> Any:
        """A shared state gets a background check that repairs it from the log (see supervisor)."""
        if not self.state.shared:
            return None
        from pulserec.online.redis.supervisor import StateSupervisor

        grace = self.settings.stream_grace_s if self.publisher else None
        return StateSupervisor(self.state, self.store, self.settings.state_sync_interval_s, grace).start()

    def readiness(self) -> dict[str, Any]:
        """Whether this process can serve: {"status": "ok" | "degraded", "checks": {name: {...}}}.
        Each check says `ok` and, when it is not, why."""
        checks: dict[str, dict[str, Any]] = {}
        if self.supervisor is not None:
            health = self.supervisor.health()
            checks["state"] = {"ok": health.ok, "backend": "redis", "status": health.status, "detail": health.detail,
                               "since": health.since}
        else:
            checks["state"] = {"ok": True, "backend": "memory", "status": "ok"}
        checks["storage"] = self._storage_check()
        ok = all(check["ok"] for check in checks.values())
        return {"status": "ok" if ok else "degraded", "checks": checks}

    def _storage_check(self) -> dict[str, Any]:
        """Readiness of the store: after a failed write it is probed with a small real write, so
        readiness recovers by itself once space returns or the file is writable again; and the
        data dir's free space must be at least `min_free_bytes` (a probe fits where a batch may not)."""
        failure = self.store.probe() if self.store.failure else None
        free = shutil.disk_usage(self.settings.data_dir).free
        if failure is not None:
            storage: dict[str, Any] = {"ok": False, "cause": failure.kind, "detail": str(failure)}
        elif free < self.settings.min_free_bytes:
            storage = {"ok": False, "cause": "disk_full",
                       "detail": f"{free:,} bytes free for {self.settings.data_dir}, below min_free_bytes "
                                 f"({self.settings.min_free_bytes:,})"}
        else:
            storage = {"ok": True}
        return {**storage, "free_bytes": free}

    def close(self) -> None:
        """Close the store (checkpointing its WAL), the state and the publisher; idempotent (the
        app's shutdown and the CLI may both call it)."""
        if self._closed:
            return
        self._closed = True
        self.jobs.close()  # no training or rebuild outlives the store it reads
        self.history.close()
        self._snapshot_on_close()
        if self.supervisor is not None:
            self.supervisor.stop()
        self.store.close()
        self.state.close()
        if self.publisher:
            self.publisher.close()

    def _fresh_state(self, source: SQLiteStore, upto_seq: int, report: Report | None = None) -> OnlineState:
        """A new in-memory state built from `source` (a snapshot of the log) up to `upto_seq`."""
        state = OnlineState(self.settings)
        state.load(source, upto_seq=upto_seq, progress=replay_progress(report, source.event_count()))
        return state

    # -- background jobs (one per target, settings.max_jobs at once; see recommend/jobs.py) ---
    def start_training(self, name: str) -> Job:
        """Retrain model `name` in the background; raises jobs.Busy or jobs.TooManyJobs."""
        return self.jobs.start("train", (name,), lambda report: self.train([name], progress=report))

    def train_in_turn(self, names: Sequence[str]) -> list[str]:
        """Train as a job in the calling thread (the retrain scheduler's), never beside a training of
        the same models and within max_jobs; returns log lines (a refused or failed turn is one)."""
        try:
            job = self.jobs.run("train", tuple(names), lambda report: self.train(names, progress=report))
        except JobRefused as refused:
            return [f"postponed: {refused}"]
        return job.result if job.state == "succeeded" else [f"failed: {job.error}"]

    def start_rebuild(self) -> Job:
        """Rebuild the online state in the background; raises jobs.Busy or jobs.TooManyJobs."""
        return self.jobs.start("rebuild", ("online-state",), lambda report: self.rebuild_state(report))

    def rebuild_state(self, report: Report | None = None) -> dict[str, Any]:
        """Rebuild the online state from the log while serving goes on, then swap it in atomically.

        It replays a snapshot of the log (one read transaction) opened under the engine lock, so
        every user deletion is either before it (not in the snapshot) or after it and recorded in
        this rebuild's own deletion list: those users' snapshot events are forgotten from the new
        state before the events stored meanwhile are applied (a user who came back after the
        deletion keeps the new events). Every served model is carried over, so nothing accepted
        is lost, nothing deleted returns, and readers never see a half-built state."""
        started = time.perf_counter()
        if self.state.shared:  # a shared (Redis) state rebuilds in place; its forget is per event
            cast(SharedState, self.state).rebuild(self.store)
            self.counters["state.rebuilds"] += 1
            return {"events": self.state.applied, "reapplied_during_build": 0, "seconds": round(time.perf_counter() - started, 3)}
        deleted: list[tuple[str, pd.DataFrame]] = []
        with self.lock:  # the snapshot's read transaction starts here, between two deletions
            snapshot = self.store.snapshot()
            watermark = snapshot.max_seq()
            self._rebuild_deletions.append(deleted)
        try:
            try:
                fresh = self._fresh_state(snapshot, watermark, report)
            finally:
                snapshot.close()
            if deleted:  # the snapshot kept their pages in the WAL: clear them now
                self.store.checkpoint()
            with self.lock:
                for key, removed in deleted:
                    fresh.forget(key, removed[removed["seq"] <= watermark])
                for record in self.store.load_items():  # catalogue changes made meanwhile
                    fresh.catalog.upsert(record)
                late = 0
                for frame in self.store.iter_events(after_seq=watermark):
                    fresh.apply_frame(frame)
                    late += len(frame)
                self.state, self.service = fresh, self.service.rebound(fresh)
        finally:
            with self.lock:
                self._rebuild_deletions = [d for d in self._rebuild_deletions if d is not deleted]
        self.counters["state.rebuilds"] += 1
        return {"events": fresh.applied, "reapplied_during_build": late, "seconds": round(time.perf_counter() - started, 3)}

    # -- models -----------------------------------------------------------------------------
    def install_model(self, model: Recommender, meta: dict[str, Any]) -> AlignedModel:
        """Serve a trained batch model (the next version of its name) over the current state;
        rows of users deleted since its training began are not used (see recommend/forgetting.py)."""
        with self.lock:
            aligned = self.service.models.install(model, meta)
            self.forgotten.mark(aligned)
            return aligned

    def train(self, names: Iterable[str] = DEFAULT_BATCH_MODELS, save: bool = True,
              progress: Report | None = None, params: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
        """Fit the named models (batch models, the ranker) on a snapshot of the log (serving goes
        on), save them under `<data_dir>/models/` and serve them; returns log lines. Each is built
        with `params[name]` when given, else with what it was last trained with
        (:meth:`trained_params`: a retrain keeps `pulserec train -p`'s choice). `progress`: a job's report."""
        names = list(names)
        with self.lock:
            self._trainings += 1
        try:
            lines = self._train_once(names, save, progress, params)
            for _ in range(FORGET_ROUNDS):  # users deleted while it trained: train again without them
                with self.lock:
                    stale = [name for name in Forgotten.stale(self.service.strategies) if name in names]
                if not stale:
                    break
                lines += self._train_once(stale, save, progress, params)
            self.retrain_forgotten(exclude=names, trainings_allowed=1)
        finally:
            with self.lock:
                self._trainings -= 1
        return lines

    def _train_once(self, names: Sequence[str], save: bool, progress: Report | None,
                    params: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
        deletions = self.store.head()[2]  # before the log is read: the deletions this training has seen

        def install(model: Recommender, meta: dict[str, Any]) -> None:
            self.install_model(model, {**meta, DELETION_VERSION: deletions})
            self.counters[f"models.{model.name}.trained"] += 1

        def params_of(name: str) -> Mapping[str, Any]:
            return params[name] if params is not None and name in params else self.trained_params(name)

        names = list(names)
        with self.lock:
            catalog = self.state.catalog
        lines = train_and_install(self.store, self.settings, catalog, install, [n for n in names if n != RANKER],
                                  save, progress, params_of)
        if RANKER in names:
            lines.append(self.train_saved_ranker(params_of(RANKER), save))
        return lines

    def trained_params(self, name: str) -> dict[str, Any]:
        """The parameters model `name` was last trained with: the served model's, else its saved
        file's, else none (the defaults)."""
        with self.lock:
            served = self.service.strategies.get(name)
        params = meta_of(served).get("params")
        return dict(params) if isinstance(params, dict) else saved_params(self.settings.data_dir, name) or {}

    def _forget_absent_users(self) -> None:
        """At start: saved models holding users the log no longer has (deleted, and the retrain
        never finished: the process stopped first) stop using them and are retrained. Only for
        the in-memory state, where the check is a lookup per model user."""
        if self.state.shared:
            return
        owners, profiles = self.state.owners, self.state.profiles
        version = self.store.head()[2]
        absent: set[str] = set()
        for model in list(self.service.strategies.values()):
            if isinstance(model, AlignedModel) and model.model_users is not None:
                absent.update(key for key in model.model_users.ids
                              if (owner := owners.get(key)) is None or profiles.get(owner) is None)
        if absent:
            log.warning("saved models hold %d users the log no longer has: retraining them without", len(absent))
            for key in absent:
                self.forgotten.add(key, version, self.service.strategies)
            self.retrain_forgotten()

    def retrain_forgotten(self, exclude: Sequence[str] = (), trainings_allowed: int = 0) -> None:
        """Retrain, as a job, the served models that still hold a deleted user; a refused job is
        retried when the training in its way finishes (or at the next deletion)."""
        with self.lock:
            names = [name for name in Forgotten.stale(self.service.strategies) if name not in exclude]
            if not names:
                if self._trainings <= trainings_allowed:  # none (but the caller) may still install a model
                    self.forgotten.prune(self.service.strategies)
                return
        try:
            self.jobs.start("train", tuple(names), lambda report: self.train(names, progress=report))
        except JobRefused as refused:
            log.info("retraining %s without deleted users postponed: %s", ", ".join(names), refused)

    def install_saved(self, failed: dict[str, str] | None = None) -> list[str]:
        """Serve every model saved under `<data_dir>/models/` that is new or changed since it was
        installed (`failed`: file -> stamp of files already found unusable)."""
        with self.lock:
            served = installed_stamps(meta_of(m) for m in self.service.strategies.values())
        return install_changed(models_dir(self.settings.data_dir), served, self.install_loaded, failed)

    def install_loaded(self, model: Any, meta: dict[str, Any]) -> Recommender | None:
        """Serve a model loaded from a file: a ranking model over the served sources it was trained
        with (None when one of them is not served), any other as a batch model."""
        apply_torch_threads(self.settings.torch_threads)
        if getattr(model, "name", None) != RANKER:
            return self.install_model(model, meta)
        from pulserec.recommend.ranker_install import install_ranker  # noqa: PLC0415 - loads LightGBM

        names = list(meta.get("sources") or model.features.sources)
        with self.lock:
            strategies = self.service.strategies
            if any(name not in strategies for name in names):
                return None
            return install_ranker(self.service.models, model, {name: strategies[name] for name in names}, info=meta)

    def train_saved_ranker(self, params: Mapping[str, Any], save: bool = True, target: Path | None = None) -> str:
        """Train the ranker with `params` (``sources``: served strategy names, default item_knn and
        trending; the rest :class:`TrainingOptions`), save it (to `target`, default
        `<data_dir>/models/ranker.model`) with those parameters, and serve it; returns a log line."""
        from pulserec.recommend.ranker_install import sources_named  # noqa: PLC0415 - loads LightGBM

        names, options = ranker_options(params)
        with self.lock:
            sources = sources_named(self.service.models, names)
        watermark, started = self.store.max_seq(), time.perf_counter()
        target = (target or model_path(self.settings.data_dir, RANKER)) if save else None

        def keep(model: Any) -> dict[str, Any]:  # saved before it is served: GET /models never shows it half-described
            info = ranker_info(list(sources), options, time.perf_counter() - started, watermark)
            if target is None:
                return info
            save_model(model, target, info)
            return {**info, **file_meta(target)}  # with the file's stamp: watchers in this process skip it

        ranker = self.train_ranker(sources, options, keep=keep)
        self.counters[f"models.{RANKER}.trained"] += 1
        return f"{RANKER}: trained over {', '.join(ranker.sources)} in {ranker.info['train_seconds']:.2f}s" + (
            f" -> {target}" if target else "")

    def train_ranker(self, sources: Mapping[str, Recommender] | None = None, options: TrainingOptions | None = None,
                     impressions: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
                     keep: Callable[[Any], Mapping[str, Any]] | None = None) -> Ranker:
        """Train the ranker on the stored log (serving goes on meanwhile) and serve it. `keep`
        (given the trained ranking model: save it) returns the metadata the served ranker shows."""
        # Imported here: the learners load LightGBM (0.7 s), which only ranker training needs.
        from pulserec.recommend.ranker_install import default_sources, install_ranker, train_ranker  # noqa: PLC0415

        with self.lock:
            models = self.service.models
            chosen = dict(sources) if sources is not None else default_sources(models)
            items = self.store.load_items()
        frames = list(self.store.iter_events())
        events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        model = train_ranker(events, items, self.settings, models, chosen, options, impressions, labels)
        info = keep(model) if keep is not None else None
        with self.lock:
            return install_ranker(self.service.models, model, chosen, trained_over=models, info=info)

    # -- ids --------------------------------------------------------------------------------
    def user_key(self, user_id: str) -> str:
        """The id under which a user is stored (a pseudonym when pseudonymisation is on)."""
        return self.pseudonym(user_id) if self.pseudonym else user_id

    def session_key(self, session_id: str) -> str:
        """The id under which a session is stored (a pseudonym when pseudonymisation is on):
        a session id is as personal as a user id (a cookie that follows one browser)."""
        return self.pseudonym.session(session_id) if self.pseudonym else session_id

    def _pseudonymous(self, event: Event) -> Event:
        user, session = event.user_id, event.session_id
        return event._replace(user_id=self.user_key(user) if user else user,
                              session_id=self.session_key(session) if session else session)

    # -- writes -----------------------------------------------------------------------------
    def check_events(self, events: Iterable[Event]) -> None:
        """The rules of the settings (event types, per-type values, id lengths); raises
        :class:`InvalidInput` naming the event's index and field."""
        weights, rules, max_id = self.settings.event_weights, self._value_rules, self.settings.max_id_len
        for i, event in enumerate(events):
            if event.type not in weights:
                raise UnknownEventType(i, event.type, weights)
            rule = rules.get(event.type)
            problem = rule.problem(event.type, event.value) if rule else None
            if problem:
                raise InvalidInput("value", problem, i)
            problem = dwell_problem(event.dwell_seconds)
            if problem:
                raise InvalidInput("dwell_seconds", problem, i)
            for attr, name in _ID_FIELDS:
                check_id_len(name, getattr(event, attr), max_id, i)

    def ingest(self, events: list[Event]) -> IngestResult:
        """Store and apply a batch atomically (all stored, or none); duplicates are skipped."""
        self.check_events(events)
        if self.pseudonym:
            events = [self._pseudonymous(e) for e in events]
        with self.lock:
            for event in events:
                if event.user_id and event.session_id:
                    self._log_in(event.user_id, event.session_id)
            seqs = self.store.append_events([e.row() for e in events])
            failure = self._apply_stored(events, seqs)
        accepted = sum(s is not None for s in seqs)
        self.counters["events.accepted"] += accepted
        self.counters["events.duplicate"] += len(events) - accepted
        result = IngestResult(accepted, len(events) - accepted, [e.event_id for e in events], [s is not None for s in seqs])
        if failure is not None:
            self.counters["events.stored_not_applied"] += accepted
            raise StoredNotApplied(result, failure)
        fresh = [e for e, s in zip(events, seqs) if s is not None]
        self._notify(Counter(e.type for e in fresh), len(events) - accepted, max((e.ts for e in fresh), default=None))
        return result

    def _log_in(self, user_key: str, session_id: str) -> None:
        """Merge an anonymous session into the user on their first event that names both."""
        session_key = SESSION_PREFIX + session_id
        if self.state.shared:  # it may lag the log (stream mode, other processes): the log decides
            if not self.store.has_anonymous_events(session_id):
                return
        else:
            owner = self.state.owners.get(session_key)
            if owner is None or not self.state.histories.recent(owner) and self.state.profiles.get(owner) is None:
                return
        claimed = self.store.claim_session(session_id, user_key)
        if claimed.empty:
            return
        user_events = self.store.user_events(user_key)
        user_events = user_events[~user_events["seq"].isin(claimed["seq"])]
        self.state.absorb(user_key, session_key, user_events, claimed, reload=self._merge_logs(user_key, session_id, claimed))
        self._snapshot_stale()
        self.counters["sessions.merged"] += 1

    def _merge_logs(self, user_key: str, session_id: str, claimed: pd.DataFrame) -> Callable[[], tuple[pd.DataFrame, pd.DataFrame]]:
        """Re-reads (the user's other events, the session's claimed events) from the log for a
        shared state's `absorb`, first claiming session events stored since (by other processes)."""
        seqs = set(claimed["seq"].tolist())

        def read() -> tuple[pd.DataFrame, pd.DataFrame]:
            seqs.update(self.store.claim_session(session_id, user_key)["seq"].tolist())
            events = self.store.user_events(user_key)
            session = events["seq"].isin(seqs).to_numpy()
            return events[~session], events[session]

        return read

    def _apply_stored(self, events: list[Event], seqs: list[int | None]) -> BaseException | None:
        """Apply (or publish) the events the store just accepted (those given a `seq`), in order.
        Returns the error if the shared state could not take them (they stay stored)."""
        fresh = [(event, seq) for event, seq in zip(events, seqs) if seq is not None]
        try:
            self._apply_or_publish(fresh)
        except STATE_UNAVAILABLE as exc:
            log.warning("stored %d events the online state could not take now (%s); they are applied later",
                        len(fresh), exc)
            if self.supervisor is not None:
                self.supervisor.note_failure(exc)
            return exc
        for event, _ in fresh:
            self.counters[f"events.{event.type}"] += 1
        return None

    def _apply_stored_frame(self, fresh: pd.DataFrame) -> None:
        """Apply a frame of events the store just accepted."""
        self.state.apply_frame(fresh)

    def _apply_or_publish(self, fresh: list[tuple[Event, int]]) -> None:
        """Publish stored events to the stream (if any) and apply them here unless the updater will.

        If publishing fails the events are applied here instead (applying is idempotent)."""
        local = self.applies_locally
        if self.publisher and fresh:
            try:
                self.publisher.publish(fresh)
            except Exception:  # noqa: BLE001 - the events are stored; apply them here instead
                log.exception("could not publish %d events to the stream; applying them in-process", len(fresh))
                local = True
        if local:
            self.state.apply_stored(fresh, self.store)

    def ingest_frame(self, frame: pd.DataFrame) -> tuple[int, int]:
        """Bulk path: a validated frame with EVENT_COLUMNS (context as JSON text), in time order."""
        return self.ingest_frames([frame])

    def ingest_frames(self, frames: Iterable[pd.DataFrame], chunk: int = 35_000, use_process: bool | None = None) -> tuple[int, int]:
        """Bulk path over many frames, pipelined: while chunk k+1 is written to SQLite by a
        writer process, chunk k is applied to the online state. Order is preserved; each chunk
        is applied only once its write committed. The writer is a forked process only when
        forking is safe (no other thread alive, not even a stream client's: no lock can be
        inherited held), else a thread."""
        with self.lock:
            self._bulk_depth += 1
        try:
            return self._ingest_frames(frames, chunk, use_process)
        finally:
            with self.lock:
                self._bulk_depth -= 1

    def _ingest_frames(self, frames: Iterable[pd.DataFrame], chunk: int, use_process: bool | None) -> tuple[int, int]:
        accepted = duplicates = 0
        if use_process is None:
            # A stream client (librdkafka) runs native threads that threading cannot see.
            use_process = self.applies_locally and self.publisher is None and threading.active_count() == 1
        with BulkWriter(self.store, self.settings.sqlite_synchronous, use_process) as writer:
            pending: tuple[pd.DataFrame, Future] | None = None
            for frame in frames:
                if self.pseudonym:
                    frame = frame.assign(user_id=frame["user_id"].map(lambda u: self.user_key(u) if isinstance(u, str) else u),
                                         session_id=frame["session_id"].map(
                                             lambda s: self.session_key(s) if isinstance(s, str) else s))
                for start, end in _chunk_bounds(len(frame), chunk, first=pending is None):
                    part = frame.iloc[start:end]
                    submitted = (part, writer.submit(part))
                    if pending is not None:
                        accepted, duplicates = self._apply_chunk(*pending, accepted, duplicates)
                    pending = submitted
            if pending is not None:
                accepted, duplicates = self._apply_chunk(*pending, accepted, duplicates)
        return accepted, duplicates

    def _apply_chunk(self, part: pd.DataFrame, stored: Future, accepted: int, duplicates: int) -> tuple[int, int]:
        seqs = stored.result()
        new = np.fromiter((seq is not None for seq in seqs), dtype=bool, count=len(seqs))
        # With their seq, so the state knows its log watermark (snapshots, tail replays).
        fresh = part[new].assign(seq=np.fromiter((seq for seq in seqs if seq is not None), dtype=np.int64, count=int(new.sum())))
        with self.lock:
            self._apply_stored_frame(fresh)
        self.counters["events.accepted"] += len(fresh)
        self.counters["events.duplicate"] += len(part) - len(fresh)
        latest = float(fresh["ts"].max()) if len(fresh) else None
        self._notify(fresh["type"].value_counts().to_dict(), len(part) - len(fresh), latest)
        return accepted + len(fresh), duplicates + len(part) - len(fresh)

    def _notify(self, accepted_by_type: Mapping[str, int], duplicates: int, latest_ts: float | None) -> None:
        for listener in self.ingest_listeners:
            try:
                listener(accepted_by_type, duplicates, latest_ts)
            except Exception:  # noqa: BLE001 - an observer must never fail an acknowledged write
                log.exception("ingest listener %r failed", listener)

    def put_items(self, records: list[ItemRecord]) -> None:
        for record in records:
            check_id_len("item_id", record.item_id, self.settings.max_id_len)
        with self.lock:
            self.store.upsert_items(records)
            self.state.catalog.upsert_many(records)
        self.counters["items.upserted"] += len(records)

    def put_user(self, user_id: str, attrs: dict[str, Any], created_ts: float | None = None) -> None:
        self.put_users([(user_id, attrs, created_ts)])

    def put_users(self, users: list[tuple[str, dict[str, Any], float | None]]) -> None:
        """Create or update many users in one transaction: (user_id, attrs, created_ts)."""
        for user_id, _, _ in users:
            check_id_len("user_id", user_id, self.settings.max_id_len)
        with self.lock:
            self.store.upsert_users([(self.user_key(uid), attrs, created) for uid, attrs, created in users])

    def delete_user(self, user_id: str) -> int:
        """Forget a user: their events, record, profile, history and share of all counts."""
        key = self.user_key(user_id)
        with self.lock:
            removed = self.store.delete_user(key)
            self.feedback.forget_user(key)
            self.experiments.forget_user(key)
            self.state.forget(key, removed)
            if self.snapshots is not None:  # they hold the user: deleted, and one without them written soon
                self.snapshots.invalidate()
                self._snapshot_stale()
            if self.state.shared and len(removed):  # the log's newest seqs may be reused (see sync)
                self.state.truncated(self.store.max_seq())
            for deleted in self._rebuild_deletions:
                deleted.append((key, removed))
            self.forgotten.add(key, self.store.head()[2], self.service.strategies)
        if not self.store.checkpoint():
            log.info("the WAL still holds pages from before the deletion: a reader keeps them until it ends")
        self.retrain_forgotten()
        self.counters["users.deleted"] += 1
        return len(removed)

    # -- health -----------------------------------------------------------------------------
    # -- reads ------------------------------------------------------------------------------
    def recommend(self, user_id: str, n: int, filters: Filters = Filters(), strategy: str | None = None,
                  context: dict[str, Any] | None = None) -> Answer:
        check_n(n, self.settings.max_n)
        key = self.user_key(user_id)
        with self.lock, self.state.reading(key):
            return self.service.recommend(key, n, filters, strategy, context)

    def recommend_session(self, session_id: str, n: int, filters: Filters = Filters(), strategy: str | None = None,
                          context: dict[str, Any] | None = None) -> Answer:
        check_n(n, self.settings.max_n)
        key = SESSION_PREFIX + self.session_key(session_id)
        with self.lock, self.state.reading(key):
            return self.service.recommend(key, n, filters, strategy, context)

    def similar(self, item_id: str, n: int, filters: Filters = Filters(), strategy: str | None = None) -> list[Recommended] | None:
        check_n(n, self.settings.max_n)
        with self.lock, self.state.reading():
            return self.service.similar(item_id, n, filters, strategy)

    def clock(self) -> float:
        """When decayed scores are read: the wall clock for live traffic, the newest event time
        for an imported history (:func:`pulserec.decay.read_clock`)."""
        return read_clock(self.state.now, time.time(), self.settings.live_clock_window)

    def profile(self, user_id: str) -> dict[str, Any] | None:
        key = self.user_key(user_id)
        with self.lock, self.state.reading(key):
            owner = self.state.owners.get(key)
            profile = self.state.profiles.get(owner) if owner is not None else None
            stored = self.store.get_user(key)
            if profile is None and stored is None:
                return None
            out: dict[str, Any] = profile.to_dict(self.clock()) if profile else {"event_count": 0}
            out["user_id"] = user_id
            out["attrs"] = stored["attrs"] if stored else {}
            recent = list(self.state.histories.recent(owner))
            catalog = self.state.catalog
            out["recent_items"] = [
                {"item_id": catalog.item_ids.id_of(t.item), "title": catalog.record(t.item).title, "type": t.type, "ts": t.ts}
                for t in reversed(recent[-20:])
            ]
            out["session"] = self._session_of(recent)
            return out

    def _session_of(self, recent: list) -> dict[str, Any]:
        """The current session: the trailing events with no gap longer than `session_gap`."""
        if not recent:
            return {"events": 0, "items": [], "started": None}
        gap = self.settings.session_gap
        start = len(recent) - 1
        while start > 0 and recent[start].ts - recent[start - 1].ts <= gap:
            start -= 1
        session = recent[start:]
        ids = self.state.catalog.item_ids
        return {"events": len(session), "items": [ids.id_of(t.item) for t in session], "started": session[0].ts}

    def item(self, item_id: str) -> dict[str, Any] | None:
        with self.lock, self.state.reading():
            idx = self.state.catalog.item_ids.get(item_id)
            if idx is None:
                return None
            record = self.state.catalog.record(idx)
            pop = self.state.popularity
            return {
                "item_id": record.item_id,
                "title": record.title,
                "description": record.description,
                "category": record.category,
                "tags": list(record.tags),
                "price": record.price,
                "active": record.active,
                "created_at": record.created_ts,
                "attrs": record.attrs,
                "events": int(pop.events[idx]) if idx < len(pop.events) else 0,
                "popularity": float(pop.total[idx]) if idx < len(pop.total) else 0.0,
            }

    def read(self, query: Callable[[State], T], owner_key: str | None = None) -> T:
        """`query(state)` under the lock, in one read scope of the online state (one snapshot of
        a shared state): how read-only views (search, trending lists) see a consistent state."""
        with self.lock, self.state.reading(owner_key):
            return query(self.state)

    def served_models(self) -> dict[str, Recommender]:
        """The strategies being served now, by name (a copy: it may change right after)."""
        with self.lock:
            return dict(self.service.strategies)

    def serves(self, name: str) -> bool:
        """Whether strategy `name` is served. Without the lock: the metrics middleware asks on the
        event loop, and one dict lookup is atomic (a strategy installed meanwhile counts next time)."""
        return name in self.service.strategies

    def search(self, query: str, limit: int = 10, users: bool = True, items: bool = True) -> SearchResults:
        """Users and items whose id or title contains `query` (see recommend/search.py)."""
        exact = self.user_key(query) if self.pseudonym else None
        return self.read(lambda state: search(state, query, limit, users, items, exact_user=exact))

    def stats(self) -> dict[str, Any]:
        with self.lock, self.state.reading():
            state = self.state
            return {
                "events_applied": state.applied,
                "events_stored": self.store.event_count(),
                "items": len(state.catalog),
                "users": len(state.profiles),
                "cooccurrence_nnz": state.cooc.nnz,
                "event_time": state.now if state.applied else None,
                "clock": self.clock() if state.applied else None,
                "strategies": sorted(self.service.strategies),
                "counters": dict(self.counters),
                "uptime_s": round(time.time() - self.started_at, 1),
                "snapshot": self._snapshot_stats(),
            }

    def _snapshot_stats(self) -> dict[str, Any] | None:
        latest = self.snapshots.latest if self.snapshots is not None else None
        if latest is None:
            return None
        return {"watermark": latest["watermark"], "age_s": round(time.time() - latest["created_at"], 1),
                "events": latest["applied"], "bytes": latest["bytes"], "file": Path(latest["path"]).name,
                "events_since": self.state.last_seq - latest["watermark"], "last_error": self.snapshots.last_error}

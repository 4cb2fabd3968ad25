"""Training, installing and retraining the served batch models of one engine.

`recommend/training.py` and `recommend/saved_models.py` do the work and take what they need as
arguments; this decides when and with what: the log up to a deletion counter, the parameters a
model was last trained with, the saved files under `<data_dir>/models/`, and the retrains that
drop users deleted since (recommend/forgetting.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pulserec.models.base import Recommender, meta_of
from pulserec.models.persist import Saveable
from pulserec.recommend.aligned import AlignedModel
from pulserec.recommend.auto_default import AUTO, first_params, needs_first_choice, needs_reselection
from pulserec.recommend.forgetting import DELETION_VERSION, Forgotten
from pulserec.recommend.jobs import Job, JobRefused, Report
from pulserec.recommend.saved_models import RANKER, install_changed, installed_stamps, models_dir, saved_params
from pulserec.recommend.training import DEFAULT_BATCH_MODELS, apply_torch_threads, train_and_install

from pulserec.engine.ranker import RankerTraining

if TYPE_CHECKING:
    from pulserec.engine.core import Engine

log = logging.getLogger(__name__)

#: Times a training is repeated when users were deleted while it read the log (each repeat reads
#: the log afresh; a deletion during the last one is retrained at the next deletion or training).
FORGET_ROUNDS = 3


class Training:
    """The engine's model trainings (jobs or direct calls) and installs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.forgotten = Forgotten()  # deleted users that served trained models still hold
        self.ranker = RankerTraining(engine)
        self._running = 0  # `train` calls running (jobs or direct): they may install models

    # -- jobs (one per target, settings.max_jobs at once; see recommend/jobs.py) ---------------
    def start(self, name: str) -> Job:
        """Retrain model `name` in the background; raises jobs.Busy or jobs.TooManyJobs."""
        return self.engine.jobs.start("train", (name,), lambda report: self.train([name], progress=report))

    def train_in_turn(self, names: Sequence[str]) -> list[str]:
        """Train as a job in the calling thread (the retrain scheduler's), never beside a training of
        the same models and within max_jobs; returns log lines (a refused or failed turn is one)."""
        try:
            job = self.engine.jobs.run("train", tuple(names), lambda report: self.train(names, progress=report))
        except JobRefused as refused:
            return [f"postponed: {refused}"]
        return job.result if job.state == "succeeded" else [f"failed: {job.error}"]

    def choose_default(self) -> Job | None:
        """At start: train the self-chosen default (`auto`) in the background when none is served
        and the log is large enough to validate on (recommend/auto_default.py); the job, or None."""
        engine = self.engine
        with engine.lock:
            strategies = dict(engine.service.strategies)
        if not needs_first_choice(strategies, engine.settings, engine.store.event_count()):
            return None
        return self._start_auto("first choice", first_params(engine.settings))

    def _start_auto(self, why: str, params: Mapping[str, Any] | None = None) -> Job | None:
        chosen = None if params is None else {AUTO: params}
        try:
            return self.engine.jobs.start("train", (AUTO,), lambda report: self.train([AUTO], progress=report, params=chosen))
        except JobRefused as refused:
            log.info("training %s (%s) postponed: %s", AUTO, why, refused)
            return None

    # -- training ------------------------------------------------------------------------------
    def train(self, names: Iterable[str] = DEFAULT_BATCH_MODELS, save: bool = True,
              progress: Report | None = None, params: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
        """Fit the named models (batch models, the ranker) on a snapshot of the log (serving goes
        on), save them under `<data_dir>/models/` and serve them; returns log lines. Each is built
        with `params[name]` when given, else with what it was last trained with
        (:meth:`trained_params`: a retrain keeps `pulserec train -p`'s choice). `progress`: a job's report."""
        names, engine = list(names), self.engine
        with engine.lock:
            self._running += 1
        try:
            lines = self._train_once(names, save, progress, params)
            for _ in range(FORGET_ROUNDS):  # users deleted while it trained: train again without them
                with engine.lock:
                    stale = [name for name in Forgotten.stale(engine.service.strategies) if name in names]
                if not stale:
                    break
                lines += self._train_once(stale, save, progress, params)
            self.retrain_forgotten(exclude=names, trainings_allowed=1)
        finally:
            with engine.lock:
                self._running -= 1
        with engine.lock:
            reselect = save and needs_reselection(names, engine.service.strategies, engine.settings)
        if reselect and (job := self._start_auto("re-selection")) is not None:
            lines.append(f"{AUTO}: choosing the default again after {', '.join(names)} (job {job.id})")
        return lines

    def _train_once(self, names: Sequence[str], save: bool, progress: Report | None,
                    params: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
        engine = self.engine
        deletions = engine.store.head()[2]  # before the log is read: the deletions this training has seen

        def install(model: Recommender, meta: dict[str, Any]) -> None:
            self.install_model(model, {**meta, DELETION_VERSION: deletions})
            engine.counters[f"models.{model.name}.trained"] += 1

        def params_of(name: str) -> Mapping[str, Any]:
            return params[name] if params is not None and name in params else self.trained_params(name)

        names = list(names)
        with engine.lock:
            catalog = engine.state.catalog
        lines = train_and_install(engine.store, engine.settings, catalog, install, [n for n in names if n != RANKER],
                                  save, progress, params_of)
        if RANKER in names:
            lines.append(self.ranker.train_saved(params_of(RANKER), save))
        return lines

    def trained_params(self, name: str) -> dict[str, Any]:
        """The parameters model `name` was last trained with: the served model's, else its saved
        file's, else none (the defaults; for `auto` those its settings give a first choice)."""
        with self.engine.lock:
            served = self.engine.service.strategies.get(name)
        params = meta_of(served).get("params")
        if isinstance(params, dict):
            return dict(params)
        return saved_params(self.engine.settings.data_dir, name) or (first_params(self.engine.settings) if name == AUTO else {})

    # -- installing ----------------------------------------------------------------------------
    def install_model(self, model: Recommender, meta: dict[str, Any]) -> AlignedModel:
        """Serve a trained batch model (the next version of its name) over the current state;
        rows of users deleted since its training began are not used (see recommend/forgetting.py)."""
        with self.engine.lock:
            aligned = self.engine.service.models.install(model, meta)
            self.forgotten.mark(aligned)
            return aligned

    def install_saved(self, failed: dict[str, str] | None = None) -> list[str]:
        """Serve every model saved under `<data_dir>/models/` that is new or changed since it was
        installed (`failed`: file -> stamp of files already found unusable)."""
        with self.engine.lock:
            served = installed_stamps(meta_of(m) for m in self.engine.service.strategies.values())
        return install_changed(models_dir(self.engine.settings.data_dir), served, self.install_loaded, failed)

    def install_loaded(self, model: Saveable, meta: dict[str, Any]) -> Recommender | None:
        """Serve a model loaded from a file: a ranking model over the served sources it was trained
        with (None when one of them is not served), any other as a batch model."""
        apply_torch_threads(self.engine.settings.torch_threads)
        if model.name != RANKER:
            return self.install_model(model, meta)
        return self.ranker.install_loaded(model, meta)

    # -- forgetting deleted users --------------------------------------------------------------
    def user_deleted(self, key: str) -> None:
        """Under the engine lock, by a deletion: the served models holding `key` stop using it."""
        self.forgotten.add(key, self.engine.store.head()[2], self.engine.service.strategies)

    def forget_absent_users(self) -> None:
        """Served models holding users the log no longer has stop using them and are retrained:
        at start (deleted, and the retrain never finished: the process stopped first), and when
        another process deleted a user (see `Engine.notice_deletions`). Checked against the log,
        the same for every state: one indexed query per 500 model users."""
        engine = self.engine
        version = engine.store.head()[2]
        held: set[str] = set()
        for model in list(engine.service.strategies.values()):
            if isinstance(model, AlignedModel) and model.model_users is not None:
                held.update(model.model_users.ids)
        absent = held - engine.store.owners_in_log(sorted(held))
        if absent:
            log.warning("saved models hold %d users the log no longer has: retraining them without", len(absent))
            for key in absent:
                self.forgotten.add(key, version, engine.service.strategies)
            self.retrain_forgotten()

    def retrain_forgotten(self, exclude: Sequence[str] = (), trainings_allowed: int = 0) -> None:
        """Retrain, as a job, the served models that still hold a deleted user; a refused job is
        retried when any job of this process ends (JobRegistry.on_finished) or at the next deletion."""
        engine = self.engine
        with engine.lock:
            names = [name for name in Forgotten.stale(engine.service.strategies) if name not in exclude]
            if not names:
                if self._running <= trainings_allowed:  # none (but the caller) may still install a model
                    self.forgotten.prune(engine.service.strategies)
                return
        try:
            engine.jobs.start("train", tuple(names), lambda report: self.train(names, progress=report))
        except JobRefused as refused:
            log.info("retraining %s without deleted users postponed: %s", ", ".join(names), refused)

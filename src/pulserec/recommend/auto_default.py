"""When pulserec trains the self-chosen default (`auto`, models/auto.py) without being asked.

A user who imports a log and runs `pulserec serve` asks for no training, yet what they get
without `strategy=` should be the blend chosen on validation, not the built-in item-kNN +
trending. Two rules, both decided here from what is served (the engine starts the jobs):

* **first choice**: at start, when no `auto` is served (none saved under models/) and the log
  holds at least `auto_train_min_events` events, `auto` is trained in the background; the
  built-in default serves until it is installed (one assignment), then the chosen blend does.
  With `serve --workers N` the parent process trains it into `<data_dir>/models/auto.model`
  (:func:`train_first_choice`) and every worker installs it through its model watcher.
* **re-selection**: after a training of models that the served `auto` blends (als, ease, ...),
  `auto` is trained again (`auto_reselect`), so its choice is made on the same log as theirs.

Either way the item-kNN parts of the chosen default stay the live online ones
(ModelSet.choose_default): every event is reflected in the next answer, training or not."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulserec.config import Settings
from pulserec.models import auto as auto_model
from pulserec.models.auto import AutoBlend, validation_params
from pulserec.models.base import Recommender
from pulserec.models.persist import ModelFileError, read_meta, save_model
from pulserec.recommend.aligned import AlignedModel
from pulserec.recommend.saved_models import model_path
from pulserec.recommend.training import fit_model, snapshot
from pulserec.store import SQLiteStore

AUTO = AutoBlend.name


def served_auto(strategies: Mapping[str, Recommender]) -> AutoBlend | None:
    """The trained `auto` being served, if any."""
    served = strategies.get(AUTO)
    model = served.model if isinstance(served, AlignedModel) else served
    return model if isinstance(model, AutoBlend) else None


def needs_first_choice(strategies: Mapping[str, Recommender], settings: Settings, events: int) -> bool:
    """Whether a start should train `auto`: none served, and enough events to validate on."""
    threshold = settings.auto_train_min_events
    return threshold > 0 and events >= threshold and served_auto(strategies) is None


def blended_names(auto: AutoBlend) -> set[str]:
    """The model names `auto` chooses between (a long-term view counts as its inner model)."""
    names = set()
    for spec in auto.components:
        name, params = (spec, {}) if isinstance(spec, str) else spec
        names.add(str(params.get("model", name)) if name == "long_term" else name)
    return names


def needs_reselection(trained: Iterable[str], strategies: Mapping[str, Recommender], settings: Settings) -> bool:
    """Whether a training of `trained` should be followed by a training of the served `auto`."""
    trained = set(trained)
    auto = served_auto(strategies)
    if not settings.auto_reselect or auto is None or AUTO in trained:
        return False
    return bool(trained & blended_names(auto))


def first_params(settings: Settings) -> dict[str, Any]:
    """The ONE place that decides what `auto` is trained with, wherever it is trained:
    `pulserec train`, a first choice or re-selection in the background of `serve`, and
    benchmarks/accuracy.py's `auto` (so the accuracy figures are of what ships). Its candidates
    as `auto_candidates` names them (empty: all of them that are installed, SASRec only with the
    `seq` extra), the validation split it learns on (`auto_validation`) and the latency budget
    of its parts (`auto_budget_p50_ms` / `auto_budget_p99_ms`, models/latency_budget.py)."""
    params = validation_params(settings.auto_validation)
    named = settings.auto_candidates
    specs = auto_model.candidates(True if named else None)  # looked up at call time: the list lives there
    params["components"] = [as_served(spec, settings) for spec in specs if not named or spec[0] in named]
    budget = (settings.auto_budget_p50_ms, settings.auto_budget_p99_ms)
    params["budget"] = list(budget) if any(budget) else None
    return params


def as_served(spec: tuple[str, dict[str, Any]], settings: Settings) -> tuple[str, dict[str, Any]]:
    """A candidate as it will be served: the item-kNN parts are the live model over the online
    state (ModelSet.choose_default), so the one validated and priced reads a co-occurrence built
    like the live one (window, gap, the K neighbours a row keeps, their eviction); an unbounded
    matrix would score other neighbours, and cost a long history ten times more per request."""
    name, params = spec
    if name == "item_knn" or (name == "long_term" and params.get("model", "item_knn") == "item_knn"):
        live = {"window": settings.cooc_window, "gap_tau": settings.cooc_gap_tau,
                "max_neighbours": settings.cooc_max_neighbours, "evict_halflife": settings.cooc_evict_halflife}
        return name, {**live, **params}
    return name, params


def describe(job: Any, settings: Settings) -> str:
    """One log line for a started `auto` job."""
    names = settings.auto_candidates or [name for name, _ in auto_model.candidates()]
    return f"choosing the default on validation in the background (job {job.id}: auto over {', '.join(names)})"


def saved_first_choice_due(settings: Settings, events: int) -> bool:
    """Like :func:`needs_first_choice` for processes that serve no models themselves (the parent
    of `serve --workers`): no readable auto file saved, and enough events."""
    threshold = settings.auto_train_min_events
    if threshold <= 0 or events < threshold:
        return False
    try:
        return read_meta(model_path(settings.data_dir, AUTO)).get("model") != AUTO
    except (OSError, ModelFileError):
        return True


def train_first_choice(settings: Settings) -> str:
    """Fit a first `auto` on the stored log and save it where serving processes load it from;
    returns a log line. The store is opened for this read alone."""
    store = SQLiteStore(settings.db_path, settings.sqlite_synchronous)
    try:
        data, watermark = snapshot(store, settings.event_weights)
    finally:
        store.close()
    model, info = fit_model(AUTO, first_params(settings), data, None, settings, watermark)
    target = model_path(settings.data_dir, AUTO)
    save_model(model, target, info)
    return f"{AUTO}: the default chosen on {len(data):,} interactions in {info['train_seconds']:.1f}s -> {target}"

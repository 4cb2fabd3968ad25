"""The models served over one online state, by name, and the one place that installs, versions
and re-binds them.

Three kinds of model are served: the live built-ins (item-kNN, trending, popular and the default
blend of the first two) that read the state's structures directly; trained batch models, served
through an :class:`AlignedModel` that maps the state's ids to the model's; and models built on
other models (blends, the ranker). When the online state is replaced (a rebuild, a replica's
reset after a deletion) :meth:`ModelSet.rebound` carries every one of them over to the new
state, each model mapped once, so a ranker's source is the very model served under its name."""

from __future__ import annotations

import math

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from pulserec.config import Settings
from pulserec.models.auto import AutoBlend, LongTerm
from pulserec.models.base import ReadsAttributes, Recommender, meta_of
from pulserec.models.blend import Blend, GatedBlend
from pulserec.models.item_knn import ItemKNN
from pulserec.models.long_term_cache import LongTermCache
from pulserec.models.neighbour_rows import NeighbourRows
from pulserec.models.popularity import Popular, Trending
from pulserec.models.search_intent import LearnedSearches, SearchIntent
from pulserec.models.demographic import Demographic, SegmentSource
from pulserec.models.social import Social
from pulserec.online.base import State
from pulserec.recommend.aligned import AlignedModel

DEFAULT_STRATEGY = "default"


@runtime_checkable
class Rebindable(Protocol):
    """A model built on other models and on the state (the ranker): it re-binds itself, given how
    each of its parts re-binds."""

    def rebound(self, rebind: Callable[[Recommender], Recommender], state: Any) -> Recommender: ...


class ModelSet:
    """Named models over `state`; `register` adds one, `install` serves a trained one."""

    def __init__(self, state: State, settings: Settings, learned: LearnedSearches | None = None,
                 segments: SegmentSource | None = None) -> None:
        self.state = state
        self.settings = settings
        self.learned = learned
        self.segments = segments
        self.search = SearchIntent(state.catalog, learned, lexical_share=settings.search_lexical_share,
                                   click_types=settings.search_click_types, session_gap=settings.session_gap)
        self.item_knn = ItemKNN(state.cooc, support=state.histories, min_support=settings.min_support,
                                long_term_cache=long_term_cache(settings), rows=neighbour_rows(settings))
        self.trending = Trending(state.popularity)
        self.trending.catalog = state.catalog
        self.popular = Popular(state.popularity)
        self.popular.catalog = state.catalog
        self.social = Social(state.histories, settings.social_types, settings.social_halflife,
                             reveal=settings.social_reveal_names)
        self.segment = Demographic(state.catalog, state.popularity, segments, settings.user_attributes,
                                   prior=settings.segment_prior)
        self.default = Blend([(self.item_knn, 1.0), (self.trending, settings.trending_blend),
                              (self.social, settings.social_blend), (self.segment, settings.segment_blend)],
                             name=DEFAULT_STRATEGY)
        self.strategies: dict[str, Recommender] = {}
        #: Strategies whose model reads the user's declared attributes for warm users too (the
        #: ranker with attribute features): the service reads them for those only.
        self.attribute_readers: set[str] = set()
        #: What the self-chosen default (an installed `auto` model) chose, for GET /models; None
        #: while the built-in blend serves.
        self.default_choice: dict[str, Any] | None = None
        for model in (self.item_knn, self.trending, self.popular, self.default, self.search, self.social,
                      self.segment):
            self.register(model)

    def register(self, model: Recommender, name: str | None = None) -> None:
        name = name or model.name
        self.strategies[name] = model
        # Decided here, once: a negative isinstance on a runtime protocol costs ~26 us a request.
        if isinstance(model, ReadsAttributes) and model.reads_attributes:
            self.attribute_readers.add(name)
        else:
            self.attribute_readers.discard(name)

    def get(self, name: str | None) -> tuple[str, Recommender]:
        """(name, model) of strategy `name` (the default when None); KeyError naming the known ones."""
        name = name or DEFAULT_STRATEGY
        try:
            return name, self.strategies[name]
        except KeyError:
            raise KeyError(f"unknown strategy {name!r}; available: {', '.join(sorted(self.strategies))}") from None

    def install(self, model: Recommender, meta: Mapping[str, Any]) -> AlignedModel:
        """Serve a trained batch model under its name, aligned to this state, as the next version
        of that name (1 for the first)."""
        previous = self.strategies.get(model.name)
        version = meta_of(previous).get("version", 0) + 1
        aligned = AlignedModel(model, self.state.catalog, self.state.owners, {**meta, "version": version})
        self.register(aligned)
        if isinstance(model, AutoBlend):
            self.choose_default(model, aligned.meta)
        return aligned

    def choose_default(self, auto: AutoBlend, meta: Mapping[str, Any]) -> None:
        """Serve `auto`'s validated blend as the default: its item-kNN parts become the live
        item-kNN over the online state (every event shows in the next answer), its batch parts
        are served aligned like any trained model; one blend per history bucket when its
        weights depend on the user's history length (models/blend.py GatedBlend)."""
        served: dict[int, Recommender] = {}

        def serve(part: Recommender) -> Recommender:
            if id(part) not in served:
                served[id(part)] = self._served_part(part, meta)
            return served[id(part)]

        chosen = auto.blend.blends if isinstance(auto.blend, GatedBlend) else [auto.blend]
        blends = []
        for blend in chosen:
            parts = [(serve(part), weight) for part, weight in blend.components if weight > 0]
            parts.append((self.social, self.settings.social_blend))  # ties count in any default (issue 14.4)
            parts.append((self.segment, self.settings.segment_blend))  # and so do attributes (14.5)
            blends.append(Blend(parts, name=DEFAULT_STRATEGY))
        if not served:
            return
        self.register(blends[0] if len(blends) == 1 else GatedBlend(auto.blend.edges, blends, name=DEFAULT_STRATEGY))
        self.default_choice = {**auto.choice(), "version": meta.get("version")}

    def _served_part(self, part: Recommender, meta: Mapping[str, Any]) -> Recommender:
        """What serves one part of `auto`'s blend: the live model over the online state where
        there is one, else the trained part aligned to the state."""
        if isinstance(part, ItemKNN):
            return self.item_knn
        if isinstance(part, LongTerm) and isinstance(part.inner, ItemKNN):
            return LongTerm.over(self.item_knn, part.weight)
        if isinstance(part, Popular) or (isinstance(part, Trending) and live_horizon(part, self.trending)):
            return self.popular if isinstance(part, Popular) else self.trending  # live counters
        return AlignedModel(part, self.state.catalog, self.state.owners, dict(meta))

    def rebound(self, state: State) -> ModelSet:
        """A model set over `state` serving every model this one serves, each re-bound to it."""
        new = ModelSet(state, self.settings, self.learned, self.segments)
        rebind = self.rebinder(new)
        for name, model in self.strategies.items():
            new.register(rebind(model), name)
        new.default_choice = self.default_choice
        return new

    def rebinder(self, new: ModelSet) -> Callable[[Recommender], Recommender]:
        """Maps a model of this set (or built on its parts) to the same model over `new`'s state;
        models that do not read the state are kept as they are. Each model is mapped once."""
        done: dict[int, Recommender] = {
            id(self.item_knn): new.item_knn, id(self.trending): new.trending,
            id(self.popular): new.popular, id(self.default): new.default, id(self.search): new.search,
            id(self.social): new.social, id(self.segment): new.segment,
        }

        def rebind(model: Recommender) -> Recommender:
            if id(model) not in done:
                done[id(model)] = _rebound(model, rebind, self.state, new.state)
            return done[id(model)]

        return rebind

    def rebound_sources(self, sources: Mapping[str, Recommender], state: State) -> dict[str, Recommender]:
        """`sources` (models of this set, or built on them) re-bound to `state` (the ranker's
        training replays the log into states of its own)."""
        rebind = self.rebinder(ModelSet(state, self.settings, self.learned, self.segments))
        return {name: rebind(model) for name, model in sources.items()}


def long_term_cache(settings: Settings) -> LongTermCache | None:
    """The live item-kNN's per-user long-term parts, as much as `long_term_cache_mb` allows."""
    size = int(settings.long_term_cache_mb * 2**20)
    return LongTermCache(size) if size > 0 else None


def neighbour_rows(settings: Settings) -> NeighbourRows | None:
    """The live item-kNN's scored rows, as much as `neighbour_rows_mb` allows."""
    size = int(settings.neighbour_rows_mb * 2**20)
    return NeighbourRows(size) if size > 0 else None


def live_horizon(part: Trending, live: Trending) -> bool:
    """Whether a trained trending part decays like the live counters (then they serve it, fresh
    after every event); a longer horizon (auto's year) is served as trained."""
    return math.isclose(part.halflife, live.halflife, rel_tol=1e-6)


def _rebound(model: Recommender, rebind: Callable[[Recommender], Recommender], old: State,
             state: State) -> Recommender:
    """One model over `state` instead of `old` (its parts mapped through `rebind`)."""
    if isinstance(model, ItemKNN) and model.cooc is old.cooc:  # a live view built outside the set
        support = state.histories if model.support is not None else None
        return ItemKNN(state.cooc, support=support, min_support=model.min_support)
    if isinstance(model, Trending) and model.popularity is old.popularity:  # also Popular
        view = type(model)(state.popularity)
        view.catalog = state.catalog
        return view
    if isinstance(model, AlignedModel):
        return model.aligned_to(state.catalog, state.owners)
    if isinstance(model, Rebindable):  # blends too: each part re-bound
        return model.rebound(rebind, state)
    return model

"""Engine settings: one immutable object, read from defaults, an optional TOML file and env vars."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pulserec.event_weights import EventWeights
from pulserec.urls import check_state_url, check_stream_url
from pulserec.validation import ID_LEN_CAP, ID_LEN_MIN, N_CAP, ValueRule, value_rules

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "search": 0.5,
    "add_to_cart": 4.0,
    "purchase": 8.0,
    "rating": 3.0,
    "like": 3.0,
    "share": 3.0,
}

#: What `value` means per event type (issue 13.2): MovieLens' half-star scale for ratings, no
#: negative amounts. Types not listed take any finite value or none. A TOML `[event_values]`
#: table replaces this whole mapping.
DEFAULT_EVENT_VALUES: dict[str, dict[str, Any]] = {
    "rating": {"min": 0.5, "max": 5.0, "required": True},
    "purchase": {"min": 0.0},
    "add_to_cart": {"min": 0.0},
}

DAY = 86_400.0


@dataclass(frozen=True)
class Settings:
    """Everything that tunes the engine. Times are in seconds of *event time*."""

    data_dir: Path = Path("pulserec-data")
    event_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    # Per event type: {"min", "max", "required"} of `value`; checked by the API and every import.
    event_values: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_EVENT_VALUES.items()})
    # Dwell time (issue 14.2, event_weights.py): an event of a type in `dwell_types` that states
    # `dwell_seconds` weighs its type's weight times a factor: `dwell_bounce_factor` under
    # `dwell_bounce_s` (a bounce), growing with log(dwell) from 1 there to `dwell_max_factor` at
    # `dwell_cap_s`, capped above. Used by co-occurrence, profiles, histories and training alike.
    dwell_types: tuple[str, ...] = ("view",)
    dwell_bounce_s: float = 3.0
    dwell_bounce_factor: float = 0.25
    dwell_cap_s: float = 300.0
    dwell_max_factor: float = 3.0
    # Search intent (issue 14.3, models/search_intent.py): right after a search, answers are
    # (1 - w) x the strategy's scores + w x the search's (BM25 over item text, `search_lexical_share`
    # of it, and what others chose after similar searches); w = `search_intent_weight`, halved
    # every `search_intent_halflife` events after the search, 0 after `session_gap`.
    search_intent_weight: float = 0.7
    search_intent_halflife: float = 3.0
    search_lexical_share: float = 0.5
    search_click_types: tuple[str, ...] = ("click", "view", "add_to_cart", "purchase")
    # Social ties (issue 14.4, models/social.py): the default blends in, with weight `social_blend`,
    # what the people a user follows did (`social_types`), each action counting tie weight x its
    # event weight x 2^(-age / social_halflife); at most `social_max_ties` ties (strongest first)
    # count. Explanations name the person only with `social_reveal_names` (who follows whom is personal).
    social_blend: float = 0.3
    social_types: tuple[str, ...] = ("like", "share", "purchase", "rating")
    social_halflife: float = 14 * DAY
    social_max_ties: int = 100
    social_reveal_names: bool = False
    # Demographic cold start (issue 14.5, models/demographic.py): for users without a history the
    # default blends in, with weight `segment_blend`, what users with the same value of each
    # declared attribute (`user_attributes`, set by PUT /users/{id} attrs) engage with, smoothed
    # toward trending by `segment_prior` pseudo-events.
    user_attributes: tuple[str, ...] = ("age_band", "gender", "country", "plan")
    segment_blend: float = 0.5
    segment_prior: float = 20.0
    # Popularity: half-life of the "trending" score.
    trending_halflife: float = 7 * DAY
    # Profiles: half-life of interest scores by category / tag.
    interest_halflife: float = 30 * DAY
    # Decay is read at the wall clock while the newest event is at most this old, else at the
    # newest event time (an imported history); see decay.py:read_clock.
    live_clock_window: float = DAY
    # Co-occurrence: pairs are formed with the user's last `cooc_window` items,
    # each pair weighted by exp(-gap / cooc_gap_tau).
    cooc_window: int = 20
    cooc_gap_tau: float = 3 * DAY
    # Scoring reads only each item's `cooc_top_k` strongest neighbours (0 = all). On MovieLens,
    # 300 keeps HitRate within 1% and saves ~17% of scoring time; 100 saves ~28% but costs ~11%.
    cooc_top_k: int = 0
    # Memory bound (issue 17.2): every compaction keeps each item's `cooc_max_neighbours`
    # strongest pairs (0 = all), so the matrix grows with items x K, not with every pair seen.
    # Eviction ranks a pair by weight x 2^(-(now - the neighbour's last event) / half-life), so
    # neighbours nobody touches any more leave the K kept (half-life 0: by weight alone).
    # Chosen on the validation split carved from MovieLens leave-last-out training data
    # (benchmarks/cooc_bound.py, docs/benchmarks.md): K = 200 with a 5-year half-life scored
    # +0.14% NDCG@10 against the unbounded structure with 47% of its pairs (K = 100: -1.95%;
    # half-lives of 90 days to 1 year: -2.6 to -13%, MovieLens spans 22 years).
    cooc_max_neighbours: int = 200
    cooc_evict_halflife: float = 5 * 365 * DAY
    # Catalogue policy (docs/architecture.md): items seen only in events (never PUT or imported
    # into the catalogue) are stored and counted but not served, unless `serve_unknown_items`.
    serve_unknown_items: bool = False
    # Minimum support: an item fewer distinct users (or sessions) touched is nobody's co-occurrence
    # neighbour (item-kNN), so one user's clicks, however many, cannot make an item the top
    # neighbour of a popular one.
    min_support: int = 2
    # Serving: how many recent events make up the user's query, and how fast older ones fade.
    history_len: int = 50
    query_len: int = 20
    position_decay: float = 4.0
    # Long-term taste: every item of the user's whole history adds this weight to the query
    # (0 = the recent events alone). Chosen on validation splits of MovieLens (docs/benchmarks.md);
    # the self-chosen default learns its own (models/auto.py).
    long_term_weight: float = 0.1
    #: At most this many history items older than the query's recent ones carry long-term taste
    #: (those the most users share; 0 = all): chosen on validation, docs/benchmarks.md.
    long_term_max_items: int = 0
    #: Memory per process for item-kNN's long-term part of recent users, MiB (0: none kept):
    #: kept while nothing in the co-occurrence changed, a request then reads its recent rows only
    #: (models/long_term_cache.py; ~24 bytes per neighbour, MovieLens ~100 KB a user).
    long_term_cache_mb: float = 64.0
    #: Memory per process for item-kNN's scored neighbour rows, MiB (0: none kept): kept while
    #: nothing in the co-occurrence changed, so a user's first request reads the rows other
    #: requests normalised already (models/neighbour_rows.py; 12 bytes per entry, MovieLens
    #: ~24 MiB for every row).
    neighbour_rows_mb: float = 64.0
    trending_blend: float = 0.05
    # A new session starts after this much inactivity.
    session_gap: float = 30 * 60.0
    # Input limits. `max_id_len` (ids, 32 to 1024) and `max_n` (results, at most 10,000) are
    # enforced by the engine and written into the OpenAPI document.
    max_batch: int = 10_000
    max_body_bytes: int = 8 * 1024 * 1024
    max_id_len: int = 128
    max_n: int = 500
    # Background jobs (trainings, rebuilds of the online state) running at once; each holds a copy
    # of the log (an ALS fit on MovieLens ~0.3 GiB), so a burst of train calls is refused past this.
    max_jobs: int = 2
    # Apps (tenants, runtime/apps.py) open at once in one server process: each open app is an
    # engine with its own online state in memory and its own SQLite connection; the least
    # recently used idle app is closed (a snapshot written) to open another one.
    max_open_apps: int = 16
    # Connection timeouts in seconds (wall clock): the request line and headers must arrive within
    # `header_timeout` of the request's first byte, body chunks at most `body_timeout` apart; an
    # idle keep-alive connection is closed after `keep_alive_timeout`. See serving/timeouts.py.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    # Durability: "NORMAL" survives a process crash (WAL); "FULL" also survives power loss.
    sqlite_synchronous: str = "NORMAL"
    # Start even though the store holds fewer events than it once committed (a lost or truncated
    # -wal file, a 0-byte or older pulserec.db; see store/watermark.py). A one-off override for
    # after a restore (`pulserec serve --accept-data-loss`), not a setting to keep.
    accept_data_loss: bool = False
    # Readiness (GET /health/ready) fails when the data dir has less free disk space than this
    # (bytes): a small probe write may still fit where the next batch of events does not.
    min_free_bytes: int = 32 * 1024 * 1024
    # Privacy: store user ids as keyed hashes (HMAC-SHA256) instead of the raw id.
    pseudonymize_users: bool = False
    # The pseudonym key's file, outside the data dir (created if missing); the env var
    # PULSEREC_PSEUDONYM_KEY, when set, is used instead. See store/pseudonym.py and docs/security.md.
    pseudonym_key_file: str = ""
    # Access control (env: comma separated). No keys = open API (local development only).
    # `api_keys` may read, write and administer; `read_keys` may only call the serving endpoints.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    read_keys: tuple[str, ...] = field(default=(), repr=False)
    # GET /metrics without a key even when keys are configured (for a Prometheus scraper that
    # cannot send one). Off by default: metrics name strategies, experiments and traffic.
    public_metrics: bool = False
    # Browser origins allowed to call the API (CORS); empty = CORS off. Requests with a
    # publishable key from any other origin (but the server's own) are refused (403).
    cors_origins: tuple[str, ...] = ()
    # Publishable keys (issue 14): put in web pages for the browser SDK, so public by design.
    # They may only send the SDK's events (POST /sdk/events) and read recommendations; each
    # key and client address gets `sdk_rate` requests per second, in bursts of `sdk_burst`.
    publishable_keys: tuple[str, ...] = field(default=(), repr=False)
    sdk_rate: float = 20.0
    sdk_burst: int = 60
    # Several processes serve one data dir: each tails the shared SQLite log before answering.
    follow_log: bool = False
    # Every this many seconds a serving process installs models that appeared or changed under
    # <data_dir>/models/ (trained by another worker, or by `pulserec train --engine spark`); 0 = off.
    model_watch_interval: float = 5.0
    # Threads torch may use to train and score the sequence models. 1 by default: on a small
    # shared box more threads thrash (3 SASRec epochs took 132 s with torch's default of 2
    # threads on 2 cores, 15 s with 1; issue 18).
    torch_threads: int = 1
    # The self-chosen default (models/auto.py): `pulserec serve` trains `auto` in the background at
    # start when none is saved and the log holds at least this many events (0 = never). Below it a
    # validation split carved from the log has too few users to choose between blends: the built-in
    # default (item-kNN + trending) serves until then, and after any later `POST /models/auto/train`.
    auto_train_min_events: int = 10_000
    # Exploration (issue 15.3, recommend/exploration.py): the share of a slate (0-1) given to
    # items with fewer than `exploration_max_impressions` impressions, per strategy, when a
    # request does not say (`?exploration=`); strategies not listed explore nothing. TOML only.
    # Empty by default, chosen on the measured trade-off (docs/filters.md, "Defaults"): slates
    # stay deterministic and pay no CTR unless a shop that onboards items asks for exposure.
    exploration_defaults: dict[str, float] = field(default_factory=dict)
    exploration_max_impressions: int = 100
    # After a training of models that `auto` blends (als, ease, ...), `auto` re-runs its choice on the
    # new log (a job of its own) when it is the served default, so the default never lags behind them.
    auto_reselect: bool = True
    # What a first `auto` chooses between (names from models/auto.py's candidates); empty = all of
    # them that are installed. A small box may leave out sasrec (its two fits take minutes on 2 cores).
    auto_candidates: tuple[str, ...] = ()
    # What `auto` learns its weights on, carved from the log: "balanced" (three targets of one
    # training log weighed equally: each user's last event, a random tenth of the rest and the
    # latest fifth of the log: the next item, long-term taste, the present period) or one
    # kind of split alone, for a shop that knows what it serves: "leave-last-out" (the next
    # item), "random" (returning users' long-term taste), "time" (the latest period).
    auto_validation: str = "balanced"
    # The latency budget of the served default's WHOLE request (models/latency_budget.py): at
    # fit time each candidate is priced on a sample of validation queries (its scores,
    # normalisation and explanation, one request at a time; item-kNN with its kept long-term
    # part, as served to a returning user) and the request's own work is measured through the
    # service itself (recommend/request_cost.py: query, filters, social and segment parts, top-n,
    # rendering); `auto` only chooses blends whose parts fit this p50 / p99 per request less that
    # work (ms; 0 = that percentile unbounded). Issue 2's target is p50 < 2, p99 < 10 ms in
    # process; 1.6 / 8.0 leaves a fifth for what neither measure sees (a first request's
    # long-term gather, the aligned parts' id maps, a busier box): docs/benchmarks.md, issue 18.
    auto_budget_p50_ms: float = 1.6
    auto_budget_p99_ms: float = 8.0
    # Scale-out (issue 7): keep the online state in Redis ("redis://host:port/db") so several
    # API processes share it; empty = the embedded in-memory state. Keys live under
    # `state_namespace`. With `stream_url`, accepted events are also published to a stream
    # (a Redis stream, or a Kafka topic for "kafka://host:port") that `pulserec updater`
    # applies to the shared state.
    # Snapshots of the in-memory online state under <data_dir>/snapshots/ (issue 17): a start
    # loads the newest valid one and replays only the log after it. One is written in the
    # background every `snapshot_every_events` applied events or `snapshot_every_s` seconds
    # with changes (0 = not on that trigger), and on a clean shutdown; `snapshot_keep` are kept.
    snapshots: bool = True
    snapshot_every_events: int = 250_000
    snapshot_every_s: float = 600.0
    snapshot_keep: int = 2
    state_url: str = ""
    state_namespace: str = "pulserec"
    stream_url: str = ""
    # Redis Streams only: split the stream into this many streams by owner (`<namespace>.events.<k>`,
    # k = crc32(owner) % shards), each applied by its own `pulserec updater --shard k`: updaters
    # then scale out without ever applying one owner's events out of order. (Kafka: ?partitions=N.)
    stream_shards: int = 1
    # Redis state: a command that gets no answer in this many seconds fails (the request answers
    # 503, the event stays stored and is applied later), so a stalled Redis cannot hang requests.
    state_timeout_s: float = 2.0
    # Every this many seconds each API process checks the Redis state (reachable, not lost) and
    # applies stored events that no process applied (a crash or an outage between store and apply).
    state_sync_interval_s: float = 1.0
    # With a stream, events younger than this are left to the updaters by that check.
    stream_grace_s: float = 10.0

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pulserec.db"

    @property
    def jobs_path(self) -> Path:
        """Background jobs of every process on this data dir (store/job_table.py)."""
        return self.data_dir / "jobs.db"

    def weight(self, event_type: str) -> float:
        return self.event_weights[event_type]

    @property
    def weighting(self) -> EventWeights:
        """Per-event weights (type weight x dwell factor): the one place they are computed."""
        return EventWeights.of_settings(self)

    @property
    def value_rules(self) -> dict[str, ValueRule]:
        """`event_values` parsed; the default rules of event types not in `event_weights` are
        left out. (Not a cached_property: that would add a key to `__dict__`, which callers copy.)"""
        specs = self.event_values
        if specs == DEFAULT_EVENT_VALUES:
            specs = {name: spec for name, spec in specs.items() if name in self.event_weights}
        return value_rules(specs, self.event_weights)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then `<data_dir>/pulserec.toml`, then `PULSEREC_*` env vars, then overrides."""
        root = Path(data_dir or os.environ.get("PULSEREC_DATA_DIR") or cls.data_dir)
        values: dict[str, Any] = {"data_dir": root}
        config_file = root / "pulserec.toml"
        if config_file.is_file():
            values.update(tomllib.loads(config_file.read_text()))
        known = {f.name: f for f in fields(cls)}
        for name, spec in known.items():
            env = os.environ.get(f"PULSEREC_{name.upper()}")
            if env is None or name in ("data_dir", "event_weights", "event_values", "exploration_defaults"):
                continue
            values[name] = _coerce(env, spec.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        values["data_dir"] = Path(values["data_dir"])
        for name in _LIST_SETTINGS:
            if name in values:
                values[name] = _as_tuple(values[name])
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of its range (and why)."""
        self._check_types()
        self._check_ranges()
        self._check_events_and_models()
        self._check_limits()
        self._check_backends()
        self._check_keys()

    def _check_types(self) -> None:
        """Each plain setting holds its declared type: a TOML `cooc_window = "20"` or `= 2.5` is
        named here, not a TypeError deep inside a request; floats must be finite (NaN passes every
        `<`/`>` comparison below as False, and so every range check written as `if x < 0`)."""
        for spec in fields(self):
            kind = _KINDS.get(str(spec.type))
            if kind is not None and not kind[1](getattr(self, spec.name)):
                raise ValueError(f"{spec.name} must be {kind[0]}, not {getattr(self, spec.name)!r}")

    def _check_ranges(self) -> None:
        for name, (low, high) in _RANGES.items():
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name} must be between {low:g} and {high:g}, not {getattr(self, name)!r}")
        if self.position_decay <= 0:
            raise ValueError("position_decay must be positive (the events a query fades over)")

    def _check_events_and_models(self) -> None:
        if not self.event_weights:
            raise ValueError("event_weights must name at least one event type")
        for name, weight in self.event_weights.items():
            if not name.isidentifier() or weight <= 0:
                raise ValueError(f"event type {name!r} needs an identifier name and a positive weight")
        self.value_rules  # noqa: B018 - parses (and so checks) event_values
        self.weighting.check()
        if not (0 <= self.search_intent_weight <= 1 and 0 <= self.search_lexical_share <= 1
                and self.search_intent_halflife > 0):
            raise ValueError("search_intent_weight and search_lexical_share must be in [0, 1], search_intent_halflife > 0")
        if not (0 <= self.social_blend < float("inf") and self.social_halflife > 0 and 1 <= self.social_max_ties <= 10_000):
            raise ValueError("social_blend must be >= 0, social_halflife > 0, social_max_ties between 1 and 10,000")
        if not all(a.isidentifier() for a in self.user_attributes) or self.segment_blend < 0 or self.segment_prior <= 0:
            raise ValueError("user_attributes must be identifiers, segment_blend >= 0 and segment_prior > 0")
        if self.min_support < 0:
            raise ValueError("min_support must be 0 or more users")
        if self.long_term_max_items < 0:
            raise ValueError("long_term_max_items must be 0 (every history item) or more")
        for strategy, share in self.exploration_defaults.items():
            if not isinstance(share, (int, float)) or not 0 <= share <= 1:
                raise ValueError(f"exploration_defaults[{strategy!r}] must be a share between 0 and 1")
        if self.exploration_max_impressions < 1:
            raise ValueError("exploration_max_impressions must be >= 1")
        if self.auto_train_min_events < 0:
            raise ValueError("auto_train_min_events must be >= 0 (0 = never train auto at start)")
        if any(name not in AUTO_CANDIDATES for name in self.auto_candidates):
            raise ValueError(f"auto_candidates must name some of {', '.join(AUTO_CANDIDATES)}, "
                             f"not {', '.join(self.auto_candidates)}")
        if self.auto_validation not in AUTO_VALIDATIONS:
            raise ValueError(f"auto_validation must be one of {', '.join(AUTO_VALIDATIONS)}, not {self.auto_validation!r}")
        if self.cooc_max_neighbours < 0:
            raise ValueError("cooc_max_neighbours must be >= 0 (0 = unbounded)")
        if not 0 <= self.cooc_evict_halflife < float("inf"):
            raise ValueError("cooc_evict_halflife must be 0 (by weight alone) or a positive number of seconds")

    def _check_limits(self) -> None:
        if not ID_LEN_MIN <= self.max_id_len <= ID_LEN_CAP:
            raise ValueError(f"max_id_len must be between {ID_LEN_MIN} and {ID_LEN_CAP}")
        if self.min_free_bytes < 0:
            raise ValueError("min_free_bytes must be 0 or more")
        if not 1 <= self.max_n <= N_CAP:
            raise ValueError(f"max_n must be between 1 and {N_CAP}")
        for name in ("trending_halflife", "interest_halflife", "cooc_gap_tau", "session_gap",
                     "header_timeout", "body_timeout", "keep_alive_timeout", "live_clock_window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not 1 <= self.max_open_apps <= 1024:
            raise ValueError("max_open_apps must be between 1 and 1024")
        if not 0 <= self.model_watch_interval < float("inf"):
            raise ValueError("model_watch_interval must be 0 (off) or a positive number of seconds")
        if self.snapshot_every_events < 0 or not 0 <= self.snapshot_every_s < float("inf") or self.snapshot_keep < 1:
            raise ValueError("snapshot_every_events and snapshot_every_s must be >= 0 (0 = off), snapshot_keep >= 1")
        if not 0 < self.sdk_rate < float("inf") or self.sdk_burst < 1:
            raise ValueError("sdk_rate must be a positive number of requests per second, sdk_burst >= 1")

    def _check_backends(self) -> None:
        if self.state_url:
            check_state_url(self.state_url)
        if self.stream_url:
            check_stream_url(self.stream_url)
        if not 1 <= self.stream_shards <= 1024:
            raise ValueError("stream_shards must be between 1 and 1024")
        for name in ("state_timeout_s", "state_sync_interval_s", "stream_grace_s"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.sqlite_synchronous not in ("NORMAL", "FULL"):
            raise ValueError("sqlite_synchronous must be NORMAL or FULL")

    def _check_keys(self) -> None:
        if self.read_keys and not self.api_keys:
            raise ValueError("read_keys need api_keys too (otherwise nobody could write)")
        if self.publishable_keys and not self.api_keys:
            raise ValueError("publishable_keys need api_keys too (without api_keys the API is open anyway)")
        if set(self.publishable_keys) & {*self.api_keys, *self.read_keys}:
            raise ValueError("a publishable key must not also be an api or read key (it is public)")
        for key in (*self.api_keys, *self.read_keys, *self.publishable_keys):
            if len(key) < 16 or not key.isascii() or not key.isprintable():
                raise ValueError("API keys must be at least 16 printable ASCII characters")


#: What the self-chosen default blends (models/auto.py's `candidates`, which a test keeps equal).
#: What `auto` may learn its weights on (models/auto.py's `validation_params`).
AUTO_VALIDATIONS = ("balanced", "leave-last-out", "random", "time")
AUTO_CANDIDATES = ("item_knn", "long_term", "ease", "ease_local", "rp3beta", "als", "trending", "popular", "sasrec")

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_float(value: Any) -> bool:
    return (isinstance(value, float) or _is_int(value)) and math.isfinite(value)


#: Declared type (as the annotation reads) -> (what the error says, check).
_KINDS: dict[str, tuple[str, Any]] = {
    "int": ("an integer", _is_int),
    "float": ("a finite number", _is_float),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "tuple[str, ...]": ("a list of strings", lambda v: isinstance(v, tuple) and all(isinstance(x, str) for x in v)),
}

#: Inclusive ranges of the numeric settings no other check bounds: what a query, a batch or a
#: body may cost. Beyond them a request would allocate without bound (or nothing would work).
_RANGES: dict[str, tuple[float, float]] = {
    "cooc_window": (1, 10_000),
    "cooc_top_k": (0, 1_000_000),
    "history_len": (1, 100_000),
    "query_len": (1, 100_000),
    "long_term_weight": (0, 1e6),
    "trending_blend": (0, 1e6),
    "max_batch": (1, 1_000_000),
    "max_body_bytes": (1024, 1 << 31),
    "max_jobs": (1, 64),
    "torch_threads": (1, 1024),
    "long_term_cache_mb": (0, 1 << 20),  # MiB per process; 0 keeps none
    "neighbour_rows_mb": (0, 1 << 20),  # MiB per process; 0 keeps none
    "auto_budget_p50_ms": (0, 1e6),  # 0: unbounded
    "auto_budget_p99_ms": (0, 1e6),
}

#: Settings holding a list of strings (a comma-separated env var, a TOML array).
_LIST_SETTINGS = ("api_keys", "read_keys", "publishable_keys", "cors_origins", "dwell_types", "auto_candidates",
                  "search_click_types", "social_types", "user_attributes")


def _as_tuple(value: Any) -> tuple[str, ...]:
    """'a, b' or ['a', 'b'] -> ('a', 'b'); blanks dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _coerce(raw: str, type_name: Any) -> Any:
    text = str(type_name)
    if "tuple" in text:
        return _as_tuple(raw)
    if "bool" in text:
        word = raw.strip().lower()
        if word not in _TRUE + _FALSE:
            raise ValueError(f"a true/false setting reads one of {', '.join(_TRUE + _FALSE)}, not {raw!r}")
        return word in _TRUE
    if "int" in text:
        return int(raw)
    if "float" in text:
        return float(raw)
    return raw

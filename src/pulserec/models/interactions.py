"""The interaction log as models see it: parallel arrays of (user, item, weight, time, type)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pulserec.event_weights import EventWeights
from pulserec.ids import IdIndex


@dataclass
class Interactions:
    """A time-stamped, weighted implicit-feedback log with its id mappings.

    `users`/`items` are dense indices into `user_ids`/`item_ids`; `weights` already carry the
    event-type weight; `values` keeps explicit values (ratings) where the event had one, else NaN.
    """

    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    timestamps: np.ndarray
    types: np.ndarray  # event type names (object array)
    user_ids: IdIndex
    item_ids: IdIndex
    values: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.users = np.asarray(self.users, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.weights = np.asarray(self.weights, dtype=np.float32)
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        self.types = np.asarray(self.types, dtype=object)
        if self.values is None:
            self.values = np.full(len(self.users), np.nan, dtype=np.float32)
        self.values = np.asarray(self.values, dtype=np.float32)
        n = len(self.users)
        for name in ("items", "weights", "timestamps", "types", "values"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Interactions.{name} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        event_weights: EventWeights | Mapping[str, float],
        user_ids: IdIndex | None = None,
        item_ids: IdIndex | None = None,
    ) -> Interactions:
        """Build from a frame with columns user_id, item_id, type, ts (and optional value).

        Rows without an item (e.g. searches) are dropped. Passing existing id indices keeps the
        numbering shared with another log (e.g. train and test of one split). `event_weights` is
        the settings' `weighting` (type weights x dwell factors); a plain mapping gives the type
        weights alone. Types without a weight count 1."""
        frame = frame[frame["item_id"].notna()]
        user_ids = user_ids if user_ids is not None else IdIndex()
        item_ids = item_ids if item_ids is not None else IdIndex()
        types = frame["type"].to_numpy(dtype=object)
        weighting = event_weights if isinstance(event_weights, EventWeights) else EventWeights(event_weights, ())
        weights = np.nan_to_num(weighting.of_frame(frame), nan=1.0).astype(np.float32)
        values = frame["value"].to_numpy(dtype=np.float32) if "value" in frame else None
        return cls(
            users=user_ids.add_many(frame["user_id"].astype(str)),
            items=item_ids.add_many(frame["item_id"].astype(str)),
            weights=weights,
            timestamps=frame["ts"].to_numpy(dtype=np.float64),
            types=types,
            user_ids=user_ids,
            item_ids=item_ids,
            values=values,
        )

    def subset(self, mask: np.ndarray) -> Interactions:
        """Rows selected by a boolean mask or index array; id mappings are shared, not copied."""
        return Interactions(
            users=self.users[mask],
            items=self.items[mask],
            weights=self.weights[mask],
            timestamps=self.timestamps[mask],
            types=self.types[mask],
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            values=self.values[mask],
        )

    def to_csr(self, shape: tuple[int, int] | None = None) -> sp.csr_matrix:
        """User x item matrix of summed weights (duplicates add up)."""
        shape = shape or (self.n_users, self.n_items)
        matrix = sp.csr_matrix(
            (self.weights.astype(np.float32), (self.users, self.items)), shape=shape, dtype=np.float32
        )
        matrix.sum_duplicates()
        return matrix

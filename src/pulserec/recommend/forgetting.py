"""Deleted users in trained models: which served models still hold a deleted user's row.

A batch model keeps what it was trained on (a factor row, a row of the user-item matrix, the id
itself) in memory and in its file under `<data_dir>/models/`. Deleting a user therefore marks
every served model that holds them: the model stops using their row at once (they are served
as a new user), and the engine retrains it without them, which replaces the file. A training
that read the log before the deletion installs a model that is marked the same way (its
`deletion_version`, the store's deletion counter when it started reading, is older), so a
deletion racing a training is retrained too.
"""

from __future__ import annotations

from collections.abc import Mapping

from pulserec.models.base import Recommender
from pulserec.recommend.aligned import AlignedModel

#: Meta key: the store's deletion version when the model's training began reading the log.
DELETION_VERSION = "deletion_version"


class Forgotten:
    """User keys deleted in this process, each with the store's deletion version after it."""

    def __init__(self) -> None:
        self._since: dict[str, int] = {}

    def add(self, user_key: str, version: int, strategies: Mapping[str, Recommender]) -> None:
        """Record a deletion and mark the served models that hold the user."""
        self._since[user_key] = version
        for model in _aligned(strategies):
            self.mark(model)

    def mark(self, model: AlignedModel) -> None:
        """Stop `model` using the rows of deleted users it was trained with."""
        trained_after = int(model.meta.get(DELETION_VERSION, 0))
        model.forgotten.update(key for key, version in self._since.items()
                               if version > trained_after and model.holds(key))

    @staticmethod
    def stale(strategies: Mapping[str, Recommender]) -> list[str]:
        """Names of the served models that still hold a deleted user (to retrain)."""
        return sorted({model.name for model in _aligned(strategies) if model.forgotten})

    def prune(self, strategies: Mapping[str, Recommender]) -> None:
        """Drop the deletions no served model holds any more. Call it only while no training
        runs: one that read the log before a deletion still needs to find it here."""
        held = set().union(*(model.forgotten for model in _aligned(strategies)))
        self._since = {key: version for key, version in self._since.items() if key in held}

    def __len__(self) -> int:
        return len(self._since)


def _aligned(strategies: Mapping[str, Recommender]) -> list[AlignedModel]:
    return [model for model in strategies.values() if isinstance(model, AlignedModel)]

"""RecBole's SASRec and GRU4Rec as peers: the split's training log goes to RecBole as an atomic
file, RecBole trains in its own environment (recbole_runner.py, a subprocess), and its
full-ranking top items per user come back as dense score rows for pulserec's evaluator.

The environment is $RECBOLE_PYTHON (default /work/recbole-venv/bin/python); see
docs/benchmarks.md for how it is made. Epochs are kept small for a 2-core box (stated in the
results); `epochs=` and `budget_s=` change them, any other parameter goes to RecBole's config
(e.g. `hidden_size=64`)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from peer_base import BatchPeer

from pulserec.models.base import Query
from pulserec.models.interactions import Interactions

RUNNER = Path(__file__).with_name("recbole_runner.py")
#: How many unseen items per user come back: the evaluator cuts the top 20 of them.
TOP = 50
#: At most this many epochs, each followed by RecBole's leave-one-out validation; training stops
#: after 3 epochs without a better validation NDCG@10 (recbole_runner.PATIENCE) or once BUDGET_S
#: seconds of training have passed (the 2-core box: a benchmark run stays within ~10 minutes).
EPOCHS = 20
BUDGET_S = 240.0


def recbole_python() -> str:
    return os.environ.get("RECBOLE_PYTHON", "/work/recbole-venv/bin/python")


class RecBolePeer(BatchPeer):
    name: ClassVar[str] = "recbole"
    model: ClassVar[str] = ""
    module: ClassVar[str] = "recbole"

    def __init__(self, epochs: int = EPOCHS, budget_s: float = BUDGET_S, **params) -> None:
        if epochs < 1 or budget_s <= 0:
            raise ValueError("epochs must be >= 1 and budget_s > 0")
        self.epochs, self.budget_s = int(epochs), float(budget_s)
        self.params = params
        self.rows = np.zeros((0, 0), dtype=np.int64)

    @classmethod
    def available(cls) -> bool:
        return Path(recbole_python()).is_file()

    def fit(self, data: Interactions, catalog=None) -> RecBolePeer:
        with tempfile.TemporaryDirectory(prefix="recbole-") as root:
            folder = Path(root) / "bench"
            folder.mkdir()
            order = np.lexsort((np.arange(len(data)), data.timestamps, data.users))
            lines = ["user_id:token\titem_id:token\ttimestamp:float"]
            lines += [f"{u}\t{i}\t{t:.0f}" for u, i, t in zip(data.users[order].tolist(), data.items[order].tolist(),
                                                                data.timestamps[order].tolist())]
            (folder / "bench.inter").write_text("\n".join(lines) + "\n")
            env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
            args = [recbole_python(), str(RUNNER), root, self.model, str(self.epochs), str(TOP), str(self.budget_s)]
            args += [f"{k}={v}" for k, v in self.params.items()]
            subprocess.run(args, check=True, env=env, cwd=root, stdout=subprocess.DEVNULL)
            with np.load(Path(root) / "top.npz", allow_pickle=False) as top:
                users, items = top["users"], top["items"]
        self.rows = np.full((data.n_users, TOP), -1, dtype=np.int64)
        self.rows[users.reshape(-1, TOP)[:, 0]] = items.reshape(-1, TOP)
        return self

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        """Rank r of a user's RecBole list scores TOP - r; everything else -inf."""
        out = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        for r, query in enumerate(queries):
            if query.user is None or not 0 <= query.user < len(self.rows):
                continue
            items = self.rows[query.user]
            ok = (items >= 0) & (items < n_items)
            out[r, items[ok]] = (TOP - np.arange(TOP, dtype=np.float32))[ok]
        return out


class RecBoleSASRec(RecBolePeer):
    name = "recbole_sasrec"
    model = "SASRec"


class RecBoleGRU4Rec(RecBolePeer):
    name = "recbole_gru4rec"
    model = "GRU4Rec"

"""The business rules every candidate list passes, as one mechanism: the catalogue policy
(active, listed items), then the fixed parameters (category, price range, items to exclude,
the owner's seen items) and a filter expression, all compiled into masks by `filter_program`.

The fixed parameters are built as expression trees directly (no text to parse), so they share
the compiled, cached masks of the language: `category == "shoes"` is computed once per
catalogue revision whether it came from `?category=shoes` or from an expression."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pulserec.online.base import ItemCatalog, State
from pulserec.recommend.expression import Compare, Field, Literal, Node, Not, Truthy, parse
from pulserec.recommend.filter_columns import Columns
from pulserec.recommend.filter_program import Env, Mask, compile_node
from pulserec.recommend.promotions import Promotion

#: Compiled expressions kept per catalogue (parsing and compiling one costs ~0.1-0.5 ms).
MAX_PROGRAMS = 256


@dataclass(frozen=True)
class Filters:
    """Business rules applied to every candidate list. `expressions`: filter-language texts,
    each with the request field that gave it (`filter_expression`, or `filter` for a named
    filter's text), which its errors name; every one must hold."""

    category: str | None = None
    exclude_seen: bool = True
    exclude: frozenset[str] = frozenset()
    min_price: float | None = None
    max_price: float | None = None
    include_inactive: bool = False
    expressions: tuple[tuple[str, str], ...] = ()  # (field, text)
    # How the slate is composed from what passes (recommend/diversity.py).
    max_per_category: int | None = None
    diversity: float = 0.0
    promotions: tuple[Promotion, ...] = ()  # running now
    exploration: float | None = None  # share of low-exposure items; None: the strategy's default

    def nodes(self, owner: int | None) -> list[Node]:
        """The fixed parameters as expression trees (conjuncts), without the expression."""
        out: list[Node] = []
        price = Field(("price",), 0)
        if self.category is not None:
            out.append(Compare("==", Field(("category",), 0), Literal(self.category, 0), 0))
        if self.min_price is not None:
            out.append(Compare(">=", price, Literal(float(self.min_price), 0), 0))
        if self.max_price is not None:
            out.append(Compare("<=", price, Literal(float(self.max_price), 0), 0))
        if self.exclude:
            ids = tuple(Literal(i, 0) for i in sorted(self.exclude))
            out.append(Not(Compare("in", Field(("item_id",), 0), ids, 0)))
        if self.exclude_seen and owner is not None:
            out.append(Not(Truthy(Field(("seen",), 0))))
        return out


class FilterCompiler:
    """Parses and compiles filters once per text (or tree) over one catalogue, and caches the
    static parts of their masks per catalogue revision (`filter_columns.Columns`)."""

    def __init__(self, catalog: ItemCatalog) -> None:
        self.columns = Columns(catalog)
        self._programs: OrderedDict[Any, Mask] = OrderedDict()
        self._slots = itertools.count()

    def compile(self, node: Node, field: str = "filter_expression") -> Mask:
        mask = self._programs.get(node)
        if mask is None:
            mask = compile_node(node, self._cached, field)
            if mask.static:
                mask = self._cached(mask)
            self._remember(node, mask)
        else:
            self._programs.move_to_end(node)
        return mask

    def parse(self, text: str, field: str = "filter_expression") -> Node:
        """The tree of `text` (FilterError naming `field` if it is not valid), compiled once."""
        key = ("text", text)
        node = self._programs.get(key)
        if node is None:
            node = parse(text, field)
            self.compile(node, field)  # type errors surface here, at the same position
            self._remember(key, node)  # type: ignore[arg-type]
        return node  # type: ignore[return-value]

    def _remember(self, key: Any, value: Any) -> None:
        self._programs[key] = value
        while len(self._programs) > MAX_PROGRAMS:
            self._programs.popitem(last=False)

    def _cached(self, mask: Mask) -> Mask:
        """`mask` computed once per catalogue revision (row by row as the catalogue changes)."""
        key = ("mask", next(self._slots))
        columns = self.columns

        def fn(env: Env, rows: Any) -> np.ndarray:
            full = columns.cached(key, lambda part: _as_array(mask.fn(Env(columns), part), part, columns))
            return full if isinstance(rows, slice) and rows == slice(0, len(full)) else full[rows]
        return Mask(fn, static=True)

    def env(self, state: State, owner: int | None, *, now: float, seen: Collection[int] | None = None,
            context: Mapping[str, Any] | None = None, attrs_of: Callable[[], Mapping[str, Any]] | None = None) -> Env:
        """What one request's masks may read besides the catalogue (the seen items only when used;
        `attrs_of`: the user's declared attributes, called at the first `user.attrs.*` read)."""
        if seen is None:
            seen = state.histories.seen(owner) if owner is not None else ()
        return Env(self.columns, now=now, seen=seen, context=context or {}, attrs_of=attrs_of)

    def mask(self, state: State, owner: int | None, filters: Filters, *, now: float,
             seen: Collection[int] | None = None, context: Mapping[str, Any] | None = None,
             env: Env | None = None, attrs_of: Callable[[], Mapping[str, Any]] | None = None) -> np.ndarray:
        """Boolean mask over the catalogue of the items `filters` let through for `owner`."""
        catalog = state.catalog
        n = len(catalog)
        # The catalogue policy: only active, listed items (unless serve_unknown_items).
        out = np.ones(n, dtype=bool) if filters.include_inactive else catalog.servable_mask(state.settings.serve_unknown_items).copy()
        nodes = filters.nodes(owner)
        nodes += [self.parse(text, field) for field, text in filters.expressions]
        if not nodes:
            return out
        env = env if env is not None else self.env(state, owner, now=now, seen=seen, context=context, attrs_of=attrs_of)
        for node in nodes:
            out &= self.evaluate(node, env)
        return out

    def evaluate(self, node: Node, env: Env) -> np.ndarray:
        """The mask of one tree over the whole catalogue (a constant broadcast)."""
        n = len(self.columns)
        part = self.compile(node).fn(env, slice(0, n))
        return np.full(n, bool(part)) if isinstance(part, (bool, np.bool_)) else part

    def matching(self, text: str, env: Env, field: str = "filter") -> np.ndarray:
        """The items an expression selects (a promotion's), without the catalogue policy."""
        return self.evaluate(self.parse(text, field), env)


def check_expression(text: str, field: str) -> Node:
    """The tree of `text` if it parses and types (FilterError naming `field` if not): how a
    named filter or a promotion's filter is validated before it is stored."""
    node = parse(text, field)
    compile_node(node, lambda mask: mask, field)
    return node


def _as_array(value: np.ndarray | bool, rows: Any, columns: Columns) -> np.ndarray:
    """A mask over `rows` even where an expression came out as one bool (`true`, a constant)."""
    if isinstance(value, (bool, np.bool_)):
        size = len(range(*rows.indices(len(columns)))) if isinstance(rows, slice) else len(rows)
        return np.full(size, bool(value))
    return value

"""Compile a filter expression's tree into a function from a request to a boolean item mask.

Each comparison becomes one vectorised NumPy operation over a catalogue column. What depends
only on the catalogue (`price < 100`, `attrs.brand != "acme"`, `tags contains "x"`) is
*static*: the largest static parts of an expression are computed once and cached per
catalogue revision (`filter_columns.Cached`, kept current row by row). What depends on the
request (`seen`, `now`, `context.*`, `user.attrs.*`, a list of item ids) is evaluated per
request, which is one comparison or one scatter of the seen items: a request's value is one
scalar (or list) broadcast against a catalogue column, so it stays one vectorised operation.

Semantics: a comparison with a missing value is false (`price < 10` leaves out items without
a price), except `!=` and `not in`, which are the negation of `==` and `in` (an item without a
brand is `!= "acme"`). Text compares exactly (`title contains` case-insensitively). A request
value that is not a single text or number (a user attribute holding a list or an object)
compares like a missing one, except on the right of `in`, where a list is the set of values."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pulserec.recommend.expression import Arith, BoolOp, Compare, Const, Field, FilterError, Literal, Node, Not, Now, Operand, Truthy
from pulserec.recommend.filter_columns import Columns, Rows

_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
ITEM_FIELDS = ("item_id", "title", "category", "price", "created_at", "active", "tags", "attrs.<name>")
REQUEST_FIELDS = ("seen", "now", "context.<name>", "user.attrs.<name>")


@dataclass
class Env:
    """One request's view: the catalogue columns, the clock, what the owner has seen, the
    context and (read at the first `user.attrs.*` an expression asks for) the user's attributes."""

    columns: Columns
    now: float = 0.0
    seen: Any = ()  # item indices the owner has touched
    context: Mapping[str, Any] = field(default_factory=dict)
    #: The requesting user's declared attributes (PUT /users/{id} attrs); None: none (a session,
    #: similar items). A callable: a store read, made only by requests whose filters use them.
    attrs_of: Callable[[], Mapping[str, Any]] | None = None
    _seen_mask: np.ndarray | None = None
    _user_attrs: Mapping[str, Any] | None = None

    def user_attr(self, name: str) -> Any:
        if self._user_attrs is None:
            self._user_attrs = (self.attrs_of() if self.attrs_of is not None else None) or {}
        return self._user_attrs.get(name)

    def seen_mask(self) -> np.ndarray:
        if self._seen_mask is None:
            mask = np.zeros(len(self.columns), dtype=bool)
            if len(self.seen):
                idx = self.seen if isinstance(self.seen, np.ndarray) else np.fromiter(self.seen, dtype=np.int64, count=len(self.seen))
                mask[idx[idx < len(mask)]] = True
            self._seen_mask = mask
        return self._seen_mask


MaskFn = Callable[[Env, Rows], "np.ndarray | bool"]


@dataclass(frozen=True)
class Mask:
    """A compiled (sub)expression: `fn(env, rows)` is a bool array over `rows` or one bool."""

    fn: MaskFn
    static: bool


@dataclass(frozen=True)
class Value:
    """A compiled operand. `column` kinds are per item; `scalar` kinds are one value per request."""

    kind: str  # number, text, category, item_id, title, tags, bool, attr (columns); scalar
    name: str
    get: Callable[[Env, Rows], Any]
    static: bool
    key: str = ""

    @property
    def per_item(self) -> bool:
        return self.kind != "scalar"


def _field(f: Field, error_field: str) -> Value:
    path, name = f.path, ".".join(f.path)
    simple = {"price": "number", "created_at": "number", "category": "category", "item_id": "item_id",
              "title": "title", "tags": "tags", "active": "bool", "seen": "bool"}
    if len(path) == 1 and path[0] in simple:
        kind = simple[path[0]]
        getters: dict[str, Callable[[Env, Rows], Any]] = {
            "number": lambda env, rows: env.columns.number(path[0], rows),
            "category": lambda env, rows: env.columns.category_codes(rows),
            "bool": (lambda env, rows: env.seen_mask()[rows]) if path[0] == "seen" else (lambda env, rows: env.columns.active(rows)),
            "title": lambda env, rows: env.columns.texts("title", rows),
        }
        return Value(kind, name, getters.get(kind, lambda env, rows: None), static=path[0] != "seen")
    if len(path) == 2 and path[0] == "attrs":
        return Value("attr", name, lambda env, rows: None, static=True, key=path[1])
    if len(path) == 2 and path[0] == "context":
        return Value("scalar", name, lambda env, rows: env.context.get(path[1]), static=False)
    if len(path) == 3 and path[:2] == ("user", "attrs"):
        return Value("scalar", name, lambda env, rows: env.user_attr(path[2]), static=False)
    known = ", ".join((*ITEM_FIELDS, *REQUEST_FIELDS))
    raise FilterError(error_field, f"unknown field {name!r} (known: {known})", f.pos)


def _operand(node: Operand, error_field: str) -> Value:
    if isinstance(node, Literal):
        return Value("scalar", repr(node.value), lambda env, rows, v=node.value: v, static=True)
    if isinstance(node, Now):
        return Value("scalar", "now", lambda env, rows: env.now, static=False)
    if isinstance(node, Field):
        return _field(node, error_field)
    left, right = _operand(node.left, error_field), _operand(node.right, error_field)
    for side in (left, right):
        if side.kind not in ("number", "attr", "scalar"):
            raise FilterError(error_field, f"{side.name} is not a number: {node.op} needs numbers", node.pos)
    op = operator.add if node.op == "+" else operator.sub
    kind = "number" if left.per_item or right.per_item else "scalar"

    def get(env: Env, rows: Rows) -> Any:
        a = _numbers(left, env, rows) if left.per_item else left.get(env, rows)
        b = _numbers(right, env, rows) if right.per_item else right.get(env, rows)
        if not all(isinstance(x, (int, float, np.ndarray)) and not isinstance(x, bool) for x in (a, b)):
            return None
        return op(a, b)
    return Value(kind, f"({left.name} {node.op} {right.name})", get, static=left.static and right.static)


def _numbers(value: Value, env: Env, rows: Rows) -> np.ndarray:
    return env.columns.attr_numbers(value.key, rows) if value.kind == "attr" else value.get(env, rows)


def _equals(column: Value, scalar: Value, pos: int, error_field: str) -> MaskFn:
    """`column == scalar` for every column kind (the scalar read per request)."""
    kind = column.kind
    if kind == "tags":
        raise FilterError(error_field, "tags is a list: use tags contains \"x\"", pos)

    def fn(env: Env, rows: Rows) -> np.ndarray:
        v = scalar.get(env, rows)
        cols = env.columns
        if (v is None and not scalar.static) or (v is not None and not isinstance(v, (str, int, float))):
            # a request value that is missing (no such attribute or context key) or not one value
            # compares false: only the literal `null` asks for items without a value
            return np.zeros(_size(env, rows), dtype=bool)
        if kind == "category":
            code = -1 if v is None else cols.category_code(v) if isinstance(v, str) else -2
            return cols.category_codes(rows) == code
        if kind == "item_id":
            return cols.item_mask(() if not isinstance(v, str) else (v,))[rows]
        if kind == "title":
            titles = cols.texts("title", rows)
            return titles == "" if v is None else np.zeros(len(titles), dtype=bool) if not isinstance(v, str) else _raw_titles(env, rows) == v
        if kind == "attr":
            if v is None:
                return (cols.attr_codes(column.key, rows) == -1) & np.isnan(cols.attr_numbers(column.key, rows))
            if isinstance(v, str):
                return cols.attr_codes(column.key, rows) == cols.attr_code(column.key, v)
            return cols.attr_numbers(column.key, rows) == float(v)
        values = column.get(env, rows)
        if v is None:
            return np.isnan(values) if kind == "number" else np.zeros(len(values), dtype=bool)
        if isinstance(v, str):
            return np.zeros(len(values), dtype=bool)
        return values == (bool(v) if kind == "bool" else float(v))
    return fn


def _raw_titles(env: Env, rows: Rows) -> np.ndarray:
    def compute(part: Rows) -> np.ndarray:
        records = env.columns.catalog.records()
        indices = range(*part.indices(part.stop)) if isinstance(part, slice) else part
        return np.array([records[i].title or "" for i in indices], dtype=object)
    return env.columns.cached(("text", "title-raw"), compute)[rows]


def _check_literal(column: Value, literal: Any, pos: int, error_field: str) -> None:
    """Type errors that can be seen at compile time: `price == "x"`, `category == 3`."""
    if literal is None or column.kind in ("attr", "scalar"):
        return
    text = isinstance(literal, str)
    if column.kind in ("category", "item_id", "title") and not text:
        raise FilterError(error_field, f"{column.name} is text: compare it with a string", pos)
    if column.kind in ("number", "bool") and text:
        raise FilterError(error_field, f"{column.name} is a {column.kind}: compare it with a {column.kind}", pos)


def _compare(node: Compare, error_field: str) -> Mask:
    if node.op == "contains":
        return _contains(node, error_field)
    left = _operand(node.left, error_field)
    if node.op == "in" and isinstance(node.right, Field):
        return _member_of(left, _field(node.right, error_field), node.right.pos, error_field)
    if node.op == "in":
        values = tuple(_operand(lit, error_field) for lit in node.right)  # type: ignore[union-attr]
        for lit in node.right:  # type: ignore[union-attr]
            _check_literal(left, lit.value, lit.pos, error_field)
        return _member(left, tuple(lit.value for lit in node.right), node.pos, error_field)  # type: ignore[union-attr]
    right = _operand(node.right, error_field)  # type: ignore[arg-type]
    if node.op in ("==", "!="):
        mask = _equality(left, right, node.pos, error_field)
        return _negate(mask) if node.op == "!=" else mask
    return _ordering(node, left, right, error_field)


def _equality(left: Value, right: Value, pos: int, error_field: str) -> Mask:
    if left.per_item and right.per_item:
        if left.kind in ("number", "attr") and right.kind in ("number", "attr"):
            return Mask(lambda env, rows: _numbers(left, env, rows) == _numbers(right, env, rows), left.static and right.static)
        raise FilterError(error_field, f"{left.name} and {right.name}: only numbers compare with each other", pos)
    column, scalar = (left, right) if left.per_item else (right, left)
    if not column.per_item:  # two scalars: one value for every item
        return Mask(lambda env, rows: left.get(env, rows) == right.get(env, rows), left.static and right.static)
    if scalar.static:
        _check_literal(column, scalar.get(None, None), pos, error_field)  # type: ignore[arg-type]
    return Mask(_equals(column, scalar, pos, error_field), column.static and scalar.static)


def _member(left: Value, values: tuple[Any, ...], pos: int, error_field: str) -> Mask:
    """`left in (values)`: one vectorised membership test (np.isin over codes or numbers)."""
    if left.kind == "tags":
        raise FilterError(error_field, "tags is a list: use tags contains \"x\"", pos)
    if not left.per_item:
        return Mask(lambda env, rows: left.get(env, rows) in values, static=left.static)
    split = _Members.of(values)
    # item ids: one lookup per id, not a pass over the catalogue (so not cached)
    return Mask(lambda env, rows: _isin(left, split, env, rows), static=left.static and left.kind != "item_id")


def _member_of(left: Value, right: Value, pos: int, error_field: str) -> Mask:
    """`left in user.attrs.NAME` (or `context.NAME`): the list is the request's, read per request;
    a single value is a list of one, a missing one matches nothing."""
    if right.per_item or right.static:
        raise FilterError(error_field, f"in takes a list (a, b, ...) or a request value such as user.attrs.<name>, "
                                       f"not {right.name}", pos)
    if left.kind == "tags":
        raise FilterError(error_field, "tags is a list: use tags contains \"x\"", pos)

    def fn(env: Env, rows: Rows) -> np.ndarray | bool:
        given = right.get(env, rows)
        values = tuple(given) if isinstance(given, (list, tuple)) else () if given is None else (given,)
        values = tuple(v for v in values if v is None or isinstance(v, (str, int, float)))
        if not left.per_item:
            return left.get(env, rows) in values
        return _isin(left, _Members.of(values), env, rows)
    return Mask(fn, static=False)


@dataclass(frozen=True)
class _Members:
    """The values of an `in` list by kind: texts, numbers, and whether null is among them."""

    texts: list[str]
    numbers: np.ndarray
    with_null: bool

    @classmethod
    def of(cls, values: tuple[Any, ...]) -> _Members:
        return cls([v for v in values if isinstance(v, str)],
                   np.array([float(v) for v in values if isinstance(v, (int, float))], dtype=np.float64),
                   any(v is None for v in values))


def _isin(left: Value, members: _Members, env: Env, rows: Rows) -> np.ndarray:
    """The mask of `left in members` over `rows`, for a per-item `left` (not tags)."""
    texts, numbers, with_null = members.texts, members.numbers, members.with_null
    cols = env.columns
    if left.kind == "item_id":
        return cols.item_mask(tuple(texts))[rows]
    if left.kind == "category":
        codes = cols.category_codes(rows)
        return _one_of(codes, [cols.category_code(v) for v in texts] + ([-1] if with_null else []))
    if left.kind == "title":
        raw = _raw_titles(env, rows)
        return np.isin(raw, texts + ([""] if with_null else []))
    if left.kind == "attr":
        codes, nums = cols.attr_codes(left.key, rows), cols.attr_numbers(left.key, rows)
        out = _one_of(codes, [cols.attr_code(left.key, v) for v in texts]) | _one_of(nums, list(numbers))
        return out | ((codes == -1) & np.isnan(nums)) if with_null else out
    column = left.get(env, rows).astype(np.float64)
    return _one_of(column, list(numbers)) | (np.isnan(column) if with_null else False)


#: Up to this many values, membership is one comparison per value: np.isin sorts or builds a
#: lookup table (~10 ms at 1M items, benchmarks/filters.py), which a cached static mask pays
#: once per catalogue but a per-request list (`category in user.attrs.preferred`) every time.
FEW_VALUES = 8


def _one_of(column: np.ndarray, values: list[Any]) -> np.ndarray:
    """`np.isin(column, values)` (NaN never a member), fast for a few values."""
    if len(values) > FEW_VALUES:
        return np.isin(column, values)
    out = np.zeros(len(column), dtype=bool)
    for value in values:
        out |= column == value
    return out


def _numeric(value: Any) -> bool:
    """A number to order by: an item column, or a request value that is an int or float (not a bool)."""
    return isinstance(value, np.ndarray) or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _size(env: Env, rows: Rows) -> int:
    return len(range(*rows.indices(len(env.columns)))) if isinstance(rows, slice) else len(rows)


def _ordering(node: Compare, left: Value, right: Value, error_field: str) -> Mask:
    for side in (left, right):
        if side.kind not in ("number", "attr", "scalar"):
            raise FilterError(error_field, f"{side.name} is not a number: {node.op} needs numbers", node.pos)
        if side.kind == "scalar" and side.static and not isinstance(side.get(None, None), (int, float)):  # type: ignore[arg-type]
            raise FilterError(error_field, f"{side.name} is not a number: {node.op} needs numbers", node.pos)
    op = _ORDER[node.op]

    def fn(env: Env, rows: Rows) -> np.ndarray | bool:
        a = _numbers(left, env, rows) if left.per_item else left.get(env, rows)
        b = _numbers(right, env, rows) if right.per_item else right.get(env, rows)
        if not (_numeric(a) and _numeric(b)):
            return False  # a request value that is not a number (text, a list, missing) compares false
        with np.errstate(invalid="ignore"):
            return op(a, b)  # NaN (missing) compares false
    return Mask(fn, left.static and right.static)


def _contains(node: Compare, error_field: str) -> Mask:
    left = _operand(node.left, error_field)
    right = _operand(node.right, error_field) if isinstance(node.right, (Literal, Field)) else None
    literal = right is not None and right.static and isinstance(right.get(None, None), str)  # type: ignore[arg-type]
    per_request = right is not None and right.kind == "scalar" and not right.static  # user.attrs.style, context.x
    if left.kind not in ("tags", "title") or not (literal or per_request):
        raise FilterError(error_field, "contains needs tags or title on the left and a string (or a request value "
                                       "such as user.attrs.<name>) on the right", node.pos)
    assert right is not None
    if literal:
        needle = right.get(None, None)  # type: ignore[arg-type]
        return Mask(lambda env, rows: _contained(left, needle, env, rows), static=True)

    def fn(env: Env, rows: Rows) -> np.ndarray | bool:
        needle = right.get(env, rows)
        return _contained(left, needle, env, rows) if isinstance(needle, str) else False  # not text: nothing matches
    return Mask(fn, static=False)


def _contained(left: Value, needle: str, env: Env, rows: Rows) -> np.ndarray:
    if left.kind == "tags":
        return env.columns.tag_mask(needle, rows)
    folded = needle.casefold()
    return np.fromiter((folded in t for t in env.columns.texts("title", rows)), dtype=bool)


def _truthy(node: Truthy, error_field: str) -> Mask:
    value = _field(node.field, error_field)
    if value.kind == "bool":
        return Mask(value.get, value.static)
    if value.kind == "attr":
        return Mask(lambda env, rows: env.columns.attr_numbers(value.key, rows) == 1.0, static=True)
    if value.kind == "scalar":
        return Mask(lambda env, rows: bool(value.get(env, rows)), static=False)
    raise FilterError(error_field, f"{value.name} is not true/false: compare it (e.g. {value.name} == ...)", node.field.pos)


def _negate(mask: Mask) -> Mask:
    def fn(env: Env, rows: Rows) -> np.ndarray | bool:
        out = mask.fn(env, rows)
        return not out if isinstance(out, (bool, np.bool_)) else ~out
    return Mask(fn, mask.static)


def _all(parts: list[Mask], static: bool) -> Mask:
    def fn(env: Env, rows: Rows) -> np.ndarray | bool:
        out: np.ndarray | bool = True
        for part in parts:
            value = part.fn(env, rows)
            if isinstance(value, (bool, np.bool_)):
                if not value:
                    return False
                continue
            out = value if out is True else (out & value)
        return out
    return Mask(fn, static)


def _any(parts: list[Mask], static: bool) -> Mask:
    negated = [_negate(p) for p in parts]
    return _negate(_all(negated, static))  # De Morgan: one loop for both


def compile_node(node: Node, columns_key: Callable[[Mask], Mask], error_field: str = "filter_expression") -> Mask:
    """The mask function of `node`; `columns_key` wraps each largest static part in a cache."""
    if isinstance(node, Const):
        return Mask(lambda env, rows, v=node.value: v, static=True)
    if isinstance(node, Truthy):
        return _truthy(node, error_field)
    if isinstance(node, Compare):
        return _compare(node, error_field)
    if isinstance(node, Not):
        return _negate(compile_node(node.node, columns_key, error_field))
    parts = [compile_node(n, columns_key, error_field) for n in node.nodes]
    if all(p.static for p in parts):
        return (_all if node.op == "and" else _any)(parts, static=True)
    assert isinstance(node, BoolOp)
    static = [p for p in parts if p.static]
    dynamic = [p for p in parts if not p.static]
    if static:  # one cached mask for the static side of a mixed and/or
        dynamic.insert(0, columns_key((_all if node.op == "and" else _any)(static, static=True)))
    return (_all if node.op == "and" else _any)(dynamic, static=False)


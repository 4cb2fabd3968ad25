"""The filter language: parse an expression such as
`category in ("shoes", "bags") and price < 100 and not seen and created_at > now - 30d`
into a small typed tree (never `eval`). `filter_program.py` compiles the tree into NumPy masks.

Grammar (LALR, `lark`): `or`, `and`, `not`, parentheses; comparisons `== != < <= > >=`;
`x in (a, b)`, `x not in (...)`; `tags contains "summer"`, `title contains "shoe"`;
numbers, "strings" or 'strings', true/false/null, durations (`30d`, `12h`, `15m`, `90s`, `2w`),
`now`, `+`/`-` between numbers, times and durations; fields (`price`, `attrs.brand`,
`context.device`, `user.attrs.plan`, `seen`); `x in user.attrs.list` (a list read per request). Errors name the position (1-based column) and
what was expected."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Union

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from pulserec.validation import InvalidInput

#: Bounds on what one expression may cost to parse and evaluate (characters, nesting, list size).
MAX_LENGTH = 8192
MAX_DEPTH = 24
MAX_LIST = 1000

_GRAMMAR = r"""
?start: disj
?disj: conj | disj "or" conj -> or_
?conj: neg | conj "and" neg -> and_
?neg: atom | "not" neg -> not_
?atom: compare | "(" disj ")" | FIELD -> truthy | "true" -> always | "false" -> never
compare: operand OP operand
       | operand "in" values -> in_
       | operand "not" "in" values -> not_in
       | operand "in" FIELD -> in_field
       | operand "not" "in" FIELD -> not_in_field
       | operand "contains" operand -> contains
?operand: term | operand "+" term -> add | operand "-" term -> sub
?term: NUMBER -> number | STRING -> string | DURATION -> duration | "now" -> now
     | "null" -> null | "true" -> true_ | "false" -> false_ | FIELD -> field
values: "(" [term ("," term)*] ")"
OP: "==" | "!=" | "<=" | ">=" | "<" | ">"
DURATION.3: /\d+(\.\d+)?(s|m|h|d|w)(?![\w.])/
NUMBER.2: /-?\d+(\.\d+)?([eE][-+]?\d+)?/
STRING: /"(?:[^"\\]|\\.)*"/ | /'(?:[^'\\]|\\.)*'/
FIELD: /[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*/
%ignore /\s+/
"""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_TOKEN_NAMES = {"FIELD": "a field name", "NUMBER": "a number", "STRING": "a string", "DURATION": "a duration",
                "OP": "a comparison (== != < <= > >=)", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
                "$END": "the end of the expression", "AND": "'and'", "OR": "'or'", "NOT": "'not'", "IN": "'in'",
                "CONTAINS": "'contains'", "PLUS": "'+'", "MINUS": "'-'", "NOW": "'now'", "NULL": "'null'",
                "TRUE": "'true'", "FALSE": "'false'"}


#: How every FilterError's message starts: the API documents it as the rule beyond the schema of
#: each operation that takes an expression (a grammar is not JSON Schema), and the fuzz test
#: excuses a 422 carrying it.
INVALID = "invalid filter expression"


class FilterError(InvalidInput):
    """An expression that cannot be parsed or typed: a 422 naming the field, the 1-based
    `position` in the expression and what was `expected` there."""

    def __init__(self, field: str, message: str, position: int | None = None, expected: list[str] | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        wanted = f"; expected {', '.join(expected)}" if expected else ""
        super().__init__(field, f"{INVALID}: {message}{where}{wanted}",
                         details={"position": position, "expected": expected or []})
        self.reason = message  # without the position: what a re-raise under another field keeps
        self.position = position
        self.expected = expected or []


# -- the tree -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Literal:
    value: Any  # str, float, bool or None
    pos: int


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class Now:
    pos: int


@dataclass(frozen=True)
class Arith:
    op: str  # "+" or "-"
    left: Operand
    right: Operand
    pos: int


Operand = Union[Literal, Field, Now, Arith]


@dataclass(frozen=True)
class Compare:
    op: str  # == != < <= > >= in contains
    left: Operand
    right: Operand | tuple[Literal, ...]
    pos: int


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" / "or"
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Truthy:
    field: Field


@dataclass(frozen=True)
class Const:
    value: bool


Node = Union[Compare, Not, BoolOp, Truthy, Const]


def _pos(item: Tree | Token) -> int:
    if isinstance(item, Token):
        return int(item.column or 1)
    return int(getattr(item.meta, "column", 1) or 1)


def _string(token: Token) -> str:
    body = str(token)[1:-1]
    return body.encode("latin-1", "backslashreplace").decode("unicode_escape") if "\\" in body else body


@v_args(meta=True)
class _ToTree(Transformer):
    """lark's parse tree -> the dataclasses above (flattening chains of and/or)."""

    def or_(self, meta, items):
        return BoolOp("or", tuple(n for i in items for n in (i.nodes if isinstance(i, BoolOp) and i.op == "or" else (i,))))

    def and_(self, meta, items):
        return BoolOp("and", tuple(n for i in items for n in (i.nodes if isinstance(i, BoolOp) and i.op == "and" else (i,))))

    def not_(self, meta, items):
        return Not(items[0])

    def truthy(self, meta, items):
        return Truthy(Field(tuple(str(items[0]).split(".")), _pos(items[0])))

    def compare(self, meta, items):
        left, op, right = items
        return Compare(str(op), left, right, _pos(op))

    def in_(self, meta, items):
        return Compare("in", items[0], items[1], meta.column)

    def not_in(self, meta, items):
        return Not(Compare("in", items[0], items[1], meta.column))

    def in_field(self, meta, items):  # `category in user.attrs.preferred`: a list given per request
        return Compare("in", items[0], self.field(meta, [items[1]]), meta.column)

    def not_in_field(self, meta, items):
        return Not(self.in_field(meta, items))

    def contains(self, meta, items):
        return Compare("contains", items[0], items[1], meta.column)

    def add(self, meta, items):
        return Arith("+", items[0], items[1], meta.column)

    def sub(self, meta, items):
        return Arith("-", items[0], items[1], meta.column)

    def values(self, meta, items):
        items = [i for i in items if i is not None]
        if len(items) > MAX_LIST:
            raise FilterError("expression", f"a list holds at most {MAX_LIST} values", meta.column)
        for item in items:
            if not isinstance(item, Literal):
                raise FilterError("expression", "a list holds literal values only", item.pos)
        return tuple(items)

    def number(self, meta, items):
        return Literal(float(items[0]), _pos(items[0]))

    def string(self, meta, items):
        return Literal(_string(items[0]), _pos(items[0]))

    def duration(self, meta, items):
        text = str(items[0])
        return Literal(float(text[:-1]) * _UNITS[text[-1]], _pos(items[0]))

    def now(self, meta, items):
        return Now(meta.column)

    def null(self, meta, items):
        return Literal(None, meta.column)

    def always(self, meta, items):
        return Const(True)

    def never(self, meta, items):
        return Const(False)

    def true_(self, meta, items):
        return Literal(True, meta.column)

    def false_(self, meta, items):
        return Literal(False, meta.column)

    def field(self, meta, items):
        return Field(tuple(str(items[0]).split(".")), _pos(items[0]))


@functools.cache
def _parser() -> Lark:
    """The LALR parser, built at the first expression parsed: building it took ~0.2 s of every
    process start (`pulserec import` included), most of which never parse a filter."""
    return Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _expected(error: UnexpectedInput) -> list[str]:
    names = getattr(error, "expected", None) or getattr(error, "allowed", None) or set()
    return sorted({_TOKEN_NAMES.get(n, n.strip('"').lower() if n.isupper() else n) for n in names})


def _depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


def parse(text: str, field: str = "filter_expression") -> Node:
    """The tree of `text`; FilterError (naming `field`, the position, what was expected) if it is
    not an expression of the language or exceeds its bounds."""
    if not text.strip():
        raise FilterError(field, "the expression is empty", 1)
    if len(text) > MAX_LENGTH:
        raise FilterError(field, f"the expression is longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    if _depth(text) > MAX_DEPTH:
        raise FilterError(field, f"parentheses nest deeper than {MAX_DEPTH}")
    try:
        tree = _parser().parse(text)
    except UnexpectedCharacters as exc:
        raise FilterError(field, f"unexpected character {text[exc.pos_in_stream]!r}", exc.column, _expected(exc)) from None
    except UnexpectedEOF as exc:
        raise FilterError(field, "the expression ends too early", len(text) + 1, _expected(exc)) from None
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            raise FilterError(field, "the expression ends too early", len(text) + 1, _expected(exc)) from None
        raise FilterError(field, f"unexpected {str(exc.token)!r}", exc.column, _expected(exc)) from None
    try:
        node = _ToTree().transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, FilterError):
            raise FilterError(field, exc.orig_exc.reason, exc.orig_exc.position) from None
        raise
    if _tree_depth(node) > MAX_DEPTH * 2:
        raise FilterError(field, f"the expression nests deeper than {MAX_DEPTH * 2} operators")
    return node


def _tree_depth(node: object) -> int:
    if isinstance(node, BoolOp):
        return 1 + max(_tree_depth(n) for n in node.nodes)
    if isinstance(node, Not):
        return 1 + _tree_depth(node.node)
    return 1

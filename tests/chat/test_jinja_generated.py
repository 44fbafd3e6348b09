"""Randomly generated expressions and whitespace layouts (fixed seeds, so the cases are stable)
rendered by jinja2 and by our interpreter over the same context as
test_jinja_exprs.py: combinations of operators, filters, tests and
conditionals that nobody would write by hand but that exercise type rules and
error parity; and random text/tag layouts with every whitespace-control
marker (-, +, trim_blocks, lstrip_blocks, comments, CRLF). Two jinja2 behaviours we deliberately do not copy are skipped:
the text of a printed generator (it contains a memory address) and errors that
jinja2 defers until a generator is consumed (we raise them at once)."""
import random

import pytest

from jinja_env import render_ours, render_ref
from test_jinja_exprs import CTX

ATOMS = ["n", "neg", "f", "z", "t", "no", "nil", "s", "w", "u", "l", "sl", "e", "d", "nested", "people", "msgs",
         "undefined_x", "1", "0", "-2", "2.5", "'ab'", "''", "'A b'", "[1, 2]", "[]", "{'k': 1}", "none", "true", "false",
         "d.a", "msgs[1]", "msgs[1].content", "people[0].name", "l[0]", "w[1:4]", "sl[-1]"]
BINARY = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or"]
FILTERS = ["length", "first", "last", "list", "string", "trim", "upper", "lower", "title", "capitalize", "reverse",
           "sort", "unique", "tojson", "int", "float", "abs", "round", "join(',')", "default('D')", "default('D', true)",
           "items", "select", "reject('none')", "map('string')", "sum", "min", "max", "count", "wordcount", "e",
           "replace('a', 'X')", "center(7)", "indent(2)", "dictsort", "batch(2)"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable", "sequence",
         "boolean", "true", "false", "odd", "even", "divisibleby(2)", "eq 1", "in [1, 'ab']", "lower", "upper"]


def expr(r, depth=0):
    k = r.random()
    if depth > 2 or k < 0.3:
        return r.choice(ATOMS)
    if k < 0.55:
        return "(%s %s %s)" % (expr(r, depth + 1), r.choice(BINARY), expr(r, depth + 1))
    if k < 0.75:
        return "%s | %s" % (expr(r, depth + 1), r.choice(FILTERS))
    if k < 0.85:
        return "(%s is %s%s)" % (expr(r, depth + 1), r.choice(["", "not "]), r.choice(TESTS))
    if k < 0.93:
        return "(%s if %s else %s)" % (expr(r, depth + 1), expr(r, depth + 1), expr(r, depth + 1))
    return "(not %s)" % expr(r, depth + 1)


def cases():
    out = []
    for seed in (1, 2):
        r = random.Random(seed)
        out += ["{{ %s }}" % expr(r) for _ in range(250)]
    return out


CASES = cases()


@pytest.mark.parametrize("src", CASES, ids=[f"g{i:03d}" for i in range(len(CASES))])
def test_generated_matches_jinja2(src):
    ok_ref, ref = render_ref(src, CTX)
    ok, ours = render_ours(src, CTX)
    if ok_ref and "generator object" in ref:
        pytest.skip("jinja2 printed a generator object")
    if ok_ref and not ok and ("not iterable" in ours or "can only iterate" in ours):
        pytest.skip("jinja2 defers this error until the generator is consumed")
    if not ok_ref:
        assert not ok, f"jinja2 failed ({ref}) but we rendered {ours!r}"
        return
    assert ok, f"we failed ({ours}); jinja2 rendered {ref!r}"
    assert ours == ref


TEXT = ["", " ", "  ", "\n", "\n\n", "  \n", "\n  ", "\t", "x", " y ", "\n z\n", "a\n  ", "\r\n", " \t\n"]


def tag_block(r, depth):
    lm = lambda: r.choice(["", "", "-", "+"])  # noqa: E731
    rm = lambda: r.choice(["", "", "-"])  # noqa: E731
    k = r.random()
    if depth > 2 or k < 0.35:
        return "{{%s %s %s}}" % (r.choice(["", "-"]), r.choice(["n", "'v'", "l[0]", "''"]), rm())
    if k < 0.45:
        return "{#%s c %s#}" % (lm(), rm())
    if k < 0.6:
        return "{%%%s set v = 1 %s%%}" % (lm(), rm())
    if k < 0.8:
        return "{%%%s if %s %s%%}%s{%%%s else %s%%}%s{%%%s endif %s%%}" % (
            lm(), r.choice(["t", "no"]), rm(), layout(r, depth + 1), lm(), rm(), layout(r, depth + 1), lm(), rm())
    return "{%%%s for i in [1, 2] %s%%}%s{%%%s endfor %s%%}" % (lm(), rm(), layout(r, depth + 1), lm(), rm())


def layout(r, depth=0):
    out = r.choice(TEXT)
    for _ in range(r.randint(0, 3)):
        out += tag_block(r, depth) + r.choice(TEXT)
    return out


def layouts():
    r = random.Random(7)
    return [layout(r) for _ in range(200)]


LAYOUTS = layouts()


@pytest.mark.parametrize("src", LAYOUTS, ids=[f"w{i:03d}" for i in range(len(LAYOUTS))])
def test_whitespace_layout_matches_jinja2(src):
    ok_ref, ref = render_ref(src, CTX)
    ok, ours = render_ours(src, CTX)
    assert ok == ok_ref, (ref, ours)
    if ok:
        assert ours == ref


def stmt_expr(r):
    return r.choice(["a", "b", "x", "n", "l[0]", "loop.index", "ns.c", "1", "'s'", "a ~ b", "x + 1", "(a is defined)",
                     "l | length", "m(a)", "loop.first", "i"])


def stmt(r, d):
    k = r.random()
    if d > 2 or k < 0.3:
        return "{{ %s }}," % stmt_expr(r)
    if k < 0.45:
        return "{%% set %s = %s %%}" % (r.choice(["a", "b", "x"]), stmt_expr(r))
    if k < 0.55:
        return "{%% set ns.c = %s %%}" % stmt_expr(r)
    if k < 0.75:
        return "{%% for i in %s %%}%s{%% else %%}E{%% endfor %%}" % (
            r.choice(["l", "[]", "range(2)", "'ab'", "d", "l if t"]), stmts(r, d + 1))
    if k < 0.85:
        return "{%% if %s %%}%s{%% elif %s %%}%s{%% endif %%}" % (stmt_expr(r), stmts(r, d + 1), stmt_expr(r),
                                                                  stmts(r, d + 1))
    if k < 0.9:
        return "{%% with a = %s %%}%s{%% endwith %%}" % (stmt_expr(r), stmts(r, d + 1))
    if k < 0.95:
        return "{%% generation %%}%s{%% endgeneration %%}" % stmts(r, d + 1)
    return "{%% set x %%}%s{%% endset %%}" % stmts(r, d + 1)


def stmts(r, d=0):
    return "".join(stmt(r, d) for _ in range(r.randint(1, 3)))


def programs():
    r = random.Random(11)
    head = "{% set ns = namespace(c=0) %}{% macro m(v) %}<{{ v }}{{ a }}>{% endmacro %}"
    return [head + stmts(r) + "|{{ a }}{{ b }}{{ x }}{{ ns.c }}" for _ in range(200)]


PROGRAMS = programs()


@pytest.mark.parametrize("src", PROGRAMS, ids=[f"p{i:03d}" for i in range(len(PROGRAMS))])
def test_scoping_matches_jinja2(src):
    """Variable scoping across for (per iteration), if, with, set blocks,
    generation blocks, namespaces and macros."""
    ok_ref, ref = render_ref(src, CTX)
    ok, ours = render_ours(src, CTX)
    assert ok == ok_ref, (ref, ours)
    if ok:
        assert ours == ref

"""Benchmark: l0's JSON repair, per kind of breakage, side by side with ``json_repair``.

    .venv/bin/python benchmarks/json_repair.py                 # 300 cases per kind
    .venv/bin/python benchmarks/json_repair.py --quick         # 40 cases per kind
    .venv/bin/python benchmarks/json_repair.py --size small    # only short documents

A seeded generator builds random JSON values (objects and arrays up to three levels deep,
with URLs, comment markers, quotes, escapes and non-ASCII text in the strings), writes each
one the way a model gets it wrong, and keeps the value that was meant. Documents are
small (1-5 members per container), medium (4-12 at the top) or large (10-30 at the top);
by default each case draws small, small, medium or large.

The kinds: ``valid`` (a baseline); seven kinds of truncation, by where the cut falls (after
a complete value, after ``[``/``{``/``,``, in or just after a key, inside a string, inside
an escape, inside a number, inside a literal); ``markdown_fence`` and ``prose`` around valid
JSON; ``trailing_commas``; ``comments`` (``//``, ``#``, ``/* */``, with comment markers
inside strings too); ``python_literals``; ``single_quotes``; ``python_repr`` (``repr()``
of a dict); ``control_chars`` (raw newlines and tabs in strings); ``missing_commas``;
``unquoted_keys``; ``unescaped_quotes``; and ``mixed`` (a fence around commented,
Python-flavoured JSON with unquoted keys and trailing commas).

Accuracy of a tool on a kind is the share of cases for which it returns, without raising, a
value equal to the intended value. Equality is structural: dicts compare as dicts, numbers
by value (``12 == 12.0``), but ``True`` never equals ``1`` and strings compare exactly.

For truncation the intended value is the one the cut text still determines:

* open strings, arrays and objects are closed, and complete elements are kept;
* a string value cut mid-way keeps the characters before the cut (a half-written escape
  such as ``\\u00`` is dropped);
* a member whose key is cut, or whose value has not started, is dropped
  (``{"a": 1, "b`` and ``{"a": 1, "b":`` both mean ``{"a": 1}``);
* a number cut mid-way keeps its longest valid prefix (``12.`` → ``12``, ``-`` → dropped);
* a literal cut mid-way is the literal its prefix names (``tru`` → ``true``, ``n`` → ``null``).

µs/case is wall time per case (best of ``--repeat`` timed runs, after an untimed one) for
turning the text into a Python value: ``l0.structured.repair.repair_json(text).value``
against ``json_repair.loads(text)``. Speedup is json_repair's time over l0's. The
"all broken" row averages over every case of every kind except ``valid``, where both
tools only call a C parser; its speedup is the ratio of those averages.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from l0.structured.repair import JSONRepairError, repair_json

# --- values ---------------------------------------------------------------------------------

_WORDS = [
    *("alpha", "beta", "gamma", "delta", "name", "id", "value", "items", "user", "tags"),
    *("score", "city", "country", "email", "status", "price", "total", "count", "title"),
    *("body", "note", "reply", "created", "updated", "enabled", "kind", "level", "owner"),
]
_SPECIAL_STRINGS = [
    "https://example.com/a//b?q=1",
    "see /* not a comment */ here",
    "issue #42 // fixed",
    "50% off, today: only",
    "naïve café ☕",
    "emoji 😀 ok",
    "C:\\temp\\new",
    'say "hi"',
    "it's fine",
    "{braces} and [brackets]",
    "",
]
_MULTILINE_STRINGS = ["line one\nline two", "col1\tcol2", "a\n\tb", "end\n"]


# Members of the top-level container, and elements of nested ones, by document size.
SIZES = {"small": ((1, 5), (1, 5)), "medium": ((4, 12), (1, 6)), "large": ((10, 30), (2, 8))}
SIZE = "mixed"  # or one of SIZES; "mixed" draws small, small, medium or large per case


@dataclass
class _Gen:
    rng: random.Random
    key_style: str = "word"  # "word": identifiers only; "any": text with spaces too
    strings: list[str] | None = None  # the special strings allowed
    want: str = ""  # "literal", "multiline": make sure one appears
    top: tuple[int, int] = (1, 5)
    inner: tuple[int, int] = (1, 5)

    def value(self) -> Any:
        size = SIZE if SIZE != "mixed" else self.rng.choice(["small", "small", "medium", "large"])
        self.top, self.inner = SIZES[size]
        for _ in range(100):
            v = self.container(0, self.rng.random() < 0.8)
            if self.want == "" or _contains(v, self.want):
                return v
        raise RuntimeError("generator could not satisfy the request")  # pragma: no cover

    def container(self, depth: int, as_object: bool) -> Any:
        n = self.rng.randint(*(self.top if depth == 0 else self.inner))
        items = [self.element(depth + 1) for _ in range(n)]
        if not as_object:
            return items
        keys: list[str] = []
        while len(keys) < n:
            k = self.key()
            if k not in keys:
                keys.append(k)
        return dict(zip(keys, items, strict=True))

    def key(self) -> str:
        word = self.rng.choice(_WORDS)
        if self.rng.random() < 0.3:
            word += "_" + str(self.rng.randint(1, 99))
        if self.key_style == "any" and self.rng.random() < 0.2:
            word += " " + self.rng.choice(_WORDS)
        return word

    def element(self, depth: int) -> Any:
        r = self.rng.random()
        if depth < 3 and r < 0.25:
            return self.container(depth, self.rng.random() < 0.5)
        r = self.rng.random()
        if r < 0.35:
            return self.text()
        if r < 0.55:
            return self.rng.randint(-1000, 100000)
        if r < 0.7:
            return round(self.rng.uniform(-1000, 1000), self.rng.randint(1, 4))
        if r < 0.8:
            return self.rng.choice([1.5e-7, 6.02e23, -2.5e10])
        return self.rng.choice([True, False, None])

    def text(self) -> str:
        pool = self.strings if self.strings is not None else _SPECIAL_STRINGS
        if pool and self.rng.random() < 0.35:
            return self.rng.choice(pool)
        return " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(1, 4)))


def _contains(v: Any, what: str) -> bool:
    """Whether ``v`` holds a literal, a multi-line string or a string with a quote."""
    wanted: Callable[[Any], bool] = {
        "literal": lambda x: x is None or isinstance(x, bool),
        "multiline": lambda x: isinstance(x, str) and ("\n" in x or "\t" in x),
        "quoted": lambda x: isinstance(x, str) and '"' in x,
    }[what]
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
        elif wanted(x):
            return True
    return False


# --- writing values, right and wrong -------------------------------------------------------------


@dataclass
class _Tok:
    """One token of a serialization: ``kind`` is open/close/key/colon/comma/str/num/lit/ws.

    ``chars`` holds, for strings and keys, the encoded form of each character, so a cut
    inside the token can be decoded to the characters it fully contains.
    """

    kind: str
    text: str
    value: Any = None
    chars: list[str] | None = None


def _encode_chars(s: str, quote: str = '"', raw_controls: bool = False) -> list[str]:
    out = []
    for ch in s:
        if ch == quote or ch == "\\":
            out.append("\\" + ch)
        elif ch < " ":
            if raw_controls:
                out.append(ch)
            else:
                out.append(json.dumps(ch)[1:-1])
        else:
            out.append(ch)
    return out


@dataclass
class _Style:
    indent: int | None = None  # None: one line
    space: bool = True  # a space after ":" and ","
    quote: str = '"'
    key_quote: str | None = '"'  # None: unquoted keys
    literals: tuple[str, str, str] = ("true", "false", "null")
    raw_controls: bool = False
    raw_quotes: bool = False  # write '"' inside strings unescaped


def _tokens(v: Any, style: _Style) -> list[_Tok]:
    toks: list[_Tok] = []
    # An explicit stack of (value, depth, phase) keeps this free of recursion limits.
    work: list[tuple[str, Any, int]] = [("value", v, 0)]
    while work:
        what, x, depth = work.pop()
        if what == "tok":
            toks.append(x)
            continue
        if what == "nl":
            if style.indent is not None:
                toks.append(_Tok("ws", "\n" + " " * (style.indent * depth)))
            continue
        if isinstance(x, (dict, list)):
            is_obj = isinstance(x, dict)
            toks.append(_Tok("open", "{" if is_obj else "["))
            items: list[tuple[Any, Any]] = list(x.items() if isinstance(x, dict) else enumerate(x))
            later: list[tuple[str, Any, int]] = []
            for idx, (k, item) in enumerate(items):
                later.append(("nl", None, depth + 1))
                if is_obj:
                    later.append(("tok", _key_tok(k, style), 0))
                    later.append(("tok", _Tok("colon", ":"), 0))
                    if style.space or style.indent is not None:
                        later.append(("tok", _Tok("ws", " "), 0))
                later.append(("value", item, depth + 1))
                if idx < len(items) - 1:
                    later.append(("tok", _Tok("comma", ","), 0))
                    if style.space and style.indent is None:
                        later.append(("tok", _Tok("ws", " "), 0))
            if items:
                later.append(("nl", None, depth))
            later.append(("tok", _Tok("close", "}" if is_obj else "]"), 0))
            work.extend(reversed(later))
        elif isinstance(x, str):
            q = style.quote
            chars = _encode_chars(x, '"' if style.raw_quotes else q, style.raw_controls)
            if style.raw_quotes:
                chars = ['"' if c == '\\"' else c for c in chars]
            toks.append(_Tok("str", q + "".join(chars) + q, x, chars))
        elif x is None or isinstance(x, bool):
            lit = style.literals[0 if x is True else 1 if x is False else 2]
            toks.append(_Tok("lit", lit, x))
        else:
            toks.append(_Tok("num", json.dumps(x), x))
    return toks


def _key_tok(k: str, style: _Style) -> _Tok:
    if style.key_quote is None:
        return _Tok("key", k, k, list(k))
    q = style.key_quote
    chars = _encode_chars(k, q)
    return _Tok("key", q + "".join(chars) + q, k, chars)


def _join(toks: list[_Tok]) -> str:
    return "".join(t.text for t in toks)


# --- truncation -----------------------------------------------------------------------------


def _cut_kind(toks: list[_Tok], t: int, r: int) -> str:
    """The kind of a cut after ``r`` characters of token ``t``."""
    if r == 0 or toks[t].kind == "ws":
        prev = next(tok for tok in reversed(toks[:t]) if tok.kind != "ws")
        return {
            "open": "trunc_after_separator",
            "comma": "trunc_after_separator",
            "colon": "trunc_dangling_key",
            "key": "trunc_dangling_key",
        }.get(prev.kind, "trunc_after_value")
    tok = toks[t]
    if tok.kind == "key":
        return "trunc_dangling_key"
    if tok.kind == "num":
        return "trunc_in_number"
    if tok.kind == "lit":
        return "trunc_in_literal"
    assert tok.kind == "str" and tok.chars is not None
    pos = 1
    for enc in tok.chars:
        if pos < r < pos + len(enc):
            return "trunc_in_escape"
        pos += len(enc)
    return "trunc_in_string"


def _intended_after_cut(toks: list[_Tok], t: int, r: int) -> Any:
    """The value the text ``toks[:t]`` plus ``r`` characters of ``toks[t]`` determines."""
    root: Any = None
    stack: list[Any] = []
    keys: list[Any] = []

    def add(v: Any) -> None:
        nonlocal root
        if not stack:
            root = v
        elif isinstance(stack[-1], dict):
            if keys[-1] is not None:
                stack[-1][keys[-1]] = v
                keys[-1] = None
        else:
            stack[-1].append(v)

    for tok in toks[:t]:
        if tok.kind == "open":
            c: Any = {} if tok.text == "{" else []
            add(c)
            stack.append(c)
            keys.append(None)
        elif tok.kind == "close":
            stack.pop()
            keys.pop()
        elif tok.kind == "key":
            keys[-1] = tok.value
        elif tok.kind in ("str", "num", "lit"):
            add(tok.value)
    if r:
        tok = toks[t]
        if tok.kind == "str":
            assert tok.chars is not None
            pos, kept = 1, []
            for enc, ch in zip(tok.chars, tok.value, strict=True):
                if pos + len(enc) > r:
                    break
                kept.append(ch)
                pos += len(enc)
            add("".join(kept))
        elif tok.kind == "num":
            head = tok.text[:r].rstrip("eE+-.")
            if any(ch.isdigit() for ch in head):
                add(float(head) if any(ch in head for ch in ".eE") else int(head))
        elif tok.kind == "lit":
            add(tok.value)
    return root


# --- the kinds --------------------------------------------------------------------------------

Case = tuple[str, Any]  # (broken text, intended value)
TRUNCATION_KINDS = [
    "trunc_after_value",
    "trunc_after_separator",
    "trunc_dangling_key",
    "trunc_in_string",
    "trunc_in_escape",
    "trunc_in_number",
    "trunc_in_literal",
]


def _random_style(rng: random.Random) -> _Style:
    return rng.choice([_Style(indent=2), _Style(), _Style(space=False)])


def _truncated(rng: random.Random, kind: str) -> Case:
    while True:
        v = _Gen(rng).value()
        toks = _tokens(v, _random_style(rng))
        cuts = []
        for t, tok in enumerate(toks):
            for r in range(len(tok.text)):
                if (t, r) != (0, 0) and _cut_kind(toks, t, r) == kind:
                    cuts.append((t, r))
        if cuts:
            t, r = rng.choice(cuts)
            text = _join(toks[:t]) + toks[t].text[:r]
            return text, _intended_after_cut(toks, t, r)


def _fenced(rng: random.Random) -> Case:
    v = _Gen(rng).value()
    body = json.dumps(v, indent=2, ensure_ascii=False)
    fence = rng.choice(["```json", "```", "```JSON"])
    intro = rng.choice(["Here is the JSON you asked for:\n\n", "Sure!\n", ""])
    outro = rng.choice(["\n\nLet me know if you need changes.", "", "\nDone."])
    return f"{intro}{fence}\n{body}\n```{outro}", v


def _prose(rng: random.Random) -> Case:
    v = _Gen(rng).value()
    body = json.dumps(v, ensure_ascii=False)
    intro = rng.choice(["Sure! The result is ", "Answer: ", "Here you go -> ", "Result:\n"])
    outro = rng.choice([" Hope this helps.", "\n\nThe fields follow the schema.", ""])
    return intro + body + outro, v


def _edit_tokens(
    rng: random.Random, style: _Style, edit: Callable[[list[_Tok], int], bool]
) -> Case:
    """Serialize a fresh value and let ``edit`` rewrite its tokens in place.

    Values where ``edit`` changed nothing (say, no comma to drop) are replaced.
    """
    while True:
        v = _Gen(rng).value()
        toks = _tokens(v, style)
        changed = False
        for i in range(len(toks)):
            changed = edit(toks, i) or changed
        if changed:
            return _join(toks), v


def _trailing_commas(rng: random.Random) -> Case:

    def edit(toks: list[_Tok], i: int) -> bool:
        tok = toks[i]
        if tok.kind == "close" and toks[i - 1].kind != "open" and rng.random() < 0.6:
            j = i - 1
            while toks[j].kind == "ws":
                j -= 1
            toks[j] = _Tok(toks[j].kind, toks[j].text + ",", toks[j].value, toks[j].chars)
            return True
        return False

    return _edit_tokens(rng, _random_style(rng), edit)


def _comments(rng: random.Random) -> Case:

    def edit(toks: list[_Tok], i: int) -> bool:
        tok = toks[i]
        if tok.kind == "ws" and "\n" in tok.text and rng.random() < 0.4:
            note = rng.choice(["// the id", "# note", "// see https://x.y/z"])
            tok.text = " " + note + tok.text
            return True
        if tok.kind == "key" and rng.random() < 0.3:
            tok.text = "/* field */ " + tok.text
            return True
        return False

    return _edit_tokens(rng, _Style(indent=2), edit)


def _python_literals(rng: random.Random) -> Case:
    v = _Gen(rng, want="literal").value()
    style = _random_style(rng)
    style.literals = ("True", "False", "None")
    return _join(_tokens(v, style)), v


def _single_quotes(rng: random.Random) -> Case:
    v = _Gen(rng).value()
    style = _random_style(rng)
    style.quote = style.key_quote = "'"
    return _join(_tokens(v, style)), v


def _python_repr(rng: random.Random) -> Case:
    strings = [s for s in _SPECIAL_STRINGS if "\\" not in s]
    v = _Gen(rng, strings=strings).value()
    return repr(v), v


def _control_chars(rng: random.Random) -> Case:
    v = _Gen(rng, strings=_MULTILINE_STRINGS, want="multiline").value()
    style = _random_style(rng)
    style.raw_controls = True
    return _join(_tokens(v, style)), v


def _missing_commas(rng: random.Random) -> Case:

    def edit(toks: list[_Tok], i: int) -> bool:
        if toks[i].kind == "comma" and rng.random() < 0.5:
            toks[i] = _Tok("ws", "" if toks[i + 1].kind == "ws" else " ")
            return True
        return False

    return _edit_tokens(rng, rng.choice([_Style(indent=2), _Style()]), edit)


def _unquoted_keys(rng: random.Random) -> Case:
    v = _Gen(rng, want="").value()
    style = _random_style(rng)
    style.key_quote = None
    while not _contains_dict(v):
        v = _Gen(rng).value()
    return _join(_tokens(v, style)), v


def _contains_dict(v: Any) -> bool:
    return isinstance(v, dict) or (isinstance(v, list) and any(_contains_dict(x) for x in v))


def _unescaped_quotes(rng: random.Random) -> Case:
    quoted = ['He said "hi" to me', 'the "best" option', 'a "quoted" word and more']
    v = _Gen(rng, strings=quoted, want="quoted").value()
    style = _random_style(rng)
    style.raw_quotes = True
    return _join(_tokens(v, style)), v


def _mixed(rng: random.Random) -> Case:
    """A fence around Python-flavoured, commented JSON with trailing commas."""
    style = _Style(indent=2, key_quote=None, literals=("True", "False", "None"))

    def edit(toks: list[_Tok], i: int) -> bool:
        tok = toks[i]
        if tok.kind == "close" and toks[i - 1].kind != "open" and rng.random() < 0.5:
            j = i - 1
            while toks[j].kind == "ws":
                j -= 1
            toks[j] = _Tok(toks[j].kind, toks[j].text + ",", toks[j].value, toks[j].chars)
            return True
        if tok.kind == "ws" and "\n" in tok.text and rng.random() < 0.2:
            tok.text = " // note" + tok.text
            return True
        return False

    text, v = _edit_tokens(rng, style, edit)
    return "```json\n" + text + "\n```", v


def _valid(rng: random.Random) -> Case:
    v = _Gen(rng).value()
    return _join(_tokens(v, _random_style(rng))), v


KINDS: dict[str, Callable[[random.Random], Case]] = {
    "valid": _valid,
    **{k: functools.partial(_truncated, kind=k) for k in TRUNCATION_KINDS},
    "markdown_fence": _fenced,
    "prose": _prose,
    "trailing_commas": _trailing_commas,
    "comments": _comments,
    "python_literals": _python_literals,
    "single_quotes": _single_quotes,
    "python_repr": _python_repr,
    "control_chars": _control_chars,
    "missing_commas": _missing_commas,
    "unquoted_keys": _unquoted_keys,
    "unescaped_quotes": _unescaped_quotes,
    "mixed": _mixed,
}


# --- scoring ----------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Structural equality: ``True`` is not ``1``, but ``12 == 12.0``."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def _l0(text: str) -> Any:
    return repair_json(text).value


def _tools() -> dict[str, Callable[[str], Any]]:
    tools: dict[str, Callable[[str], Any]] = {"l0": _l0}
    # This file is itself called json_repair.py: hide its folder so the import finds the
    # installed package, not this script.
    here = os.path.dirname(os.path.abspath(__file__))
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        import json_repair
    except ImportError:
        return tools
    finally:
        sys.path[:] = saved
    tools["json_repair"] = json_repair.loads
    return tools


_FAILED = object()


def _run(tool: Callable[[str], Any], cases: list[Case], repeat: int) -> tuple[int, float]:
    """Correct cases, and the best per-case time in µs over ``repeat`` timed runs.

    An untimed first run collects the answers and warms caches.
    """
    results: list[Any] = []
    for text, _intended in cases:
        try:
            results.append(tool(text))
        except Exception:  # a tool that raises simply misses the case
            results.append(_FAILED)
    correct = sum(
        1
        for got, (_text, want) in zip(results, cases, strict=True)
        if got is not _FAILED and same(got, want)
    )
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text, _intended in cases:
            try:
                tool(text)
            except Exception:
                pass
        best = min(best, time.perf_counter() - start)
    return correct, best / len(cases) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="40 cases per kind, one run")
    parser.add_argument("--n", type=int, help="cases per kind (default 300, 40 with --quick)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--repeat", type=int, help="runs per tool, best time kept")
    parser.add_argument("--show-failures", action="store_true", help="print l0's misses")
    parser.add_argument(
        "--size", choices=["mixed", *SIZES], default="mixed", help="document size (default mixed)"
    )
    args = parser.parse_args(argv)
    global SIZE
    SIZE = args.size
    n = args.n or (40 if args.quick else 300)
    repeat = args.repeat or (1 if args.quick else 3)
    tools = _tools()
    names = list(tools)

    header = ["kind", "n", "avg chars"]
    for name in names:
        header += [f"{name} accuracy", f"{name} µs/case"]
    if len(names) > 1:
        header.append("speedup")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))

    totals = {name: [0, 0.0] for name in names}
    count = total_chars = 0
    for kind, make in KINDS.items():
        rng = random.Random(f"{args.seed}:{kind}")
        cases = [make(rng) for _ in range(n)]
        row = [kind, str(n), str(round(sum(len(text) for text, _ in cases) / n))]
        times = {}
        for name in names:
            correct, us = _run(tools[name], cases, repeat)
            times[name] = us
            row += [f"{correct / n:.1%}", f"{us:.1f}"]
            if kind != "valid":
                totals[name][0] += correct
                totals[name][1] += us * n
            if args.show_failures and name == "l0":
                _show_failures(cases)
        if kind != "valid":
            count += n
            total_chars += sum(len(text) for text, _ in cases)
        if len(names) > 1:
            row.append(f"{times['json_repair'] / times['l0']:.1f}×")
        print("| " + " | ".join(row) + " |")

    row = ["**all broken**", str(count), str(round(total_chars / count))]
    for name in names:
        row += [f"{totals[name][0] / count:.1%}", f"{totals[name][1] / count:.1f}"]
    if len(names) > 1:
        row.append(f"{totals['json_repair'][1] / totals['l0'][1]:.1f}×")
    print("| " + " | ".join(row) + " |")
    if len(names) == 1:
        print("\n(json_repair is not installed: `pip install json_repair` to compare.)")
    return 0


def _show_failures(cases: list[Case]) -> None:
    for text, want in cases:
        try:
            got = repair_json(text).value
        except JSONRepairError as e:
            got = e
        if not same(got, want):
            print(f"    MISS {text!r}\n      want {want!r}\n      got  {got!r}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

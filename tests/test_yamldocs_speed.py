"""The YAML composer's fast paths must not change what a file means.

``reconciler.source.yamldocs`` takes shortcuts for the common case (plain text scalars,
block mappings); these tests pin the results of the uncommon cases next to them: keys that
are not text, merge keys, anchors, tags, YAML 1.1 look-alikes, limits and parser errors.
"""

from __future__ import annotations

import pytest

from reconciler.source.yamldocs import MAX_NODES, parse


def _one(text: str):
    parsed = parse(text.encode())
    assert len(parsed.documents) == 1, parsed
    doc = parsed.documents[0]
    return doc.data, doc.lines, [(p.line, p.field, p.message) for p in parsed.problems]


# --- keys that are not text ---------------------------------------------------------------

def test_non_text_keys_become_text_whatever_their_value_looks_like():
    data, lines, problems = _one("true: x\n1: foo\n2: 10\n~: text\n0x10: hex\n")
    assert data == {"true": "x", "1": "foo", "2": 10, "None": "text", "16": "hex"}
    assert lines == {(): 1, ("true",): 1, ("1",): 2, ("2",): 3, ("None",): 4, ("16",): 5}
    assert problems == []


def test_a_number_key_and_the_same_key_quoted_are_a_duplicate():
    data, lines, problems = _one('1: a\n"1": b\n')
    assert data == {"1": "b"}
    assert problems == [(2, "1", "key '1' appears twice (lines 1 and 2); remove one")]


def test_children_of_a_number_key_are_recorded_under_its_text():
    data, lines, problems = _one("a:\n  1:\n    b: c\n  2: NO\n")
    assert data == {"a": {"1": {"b": "c"}, "2": "NO"}}
    assert lines[("a", "1", "b")] == 3 and lines[("a", "1")] == 2
    assert problems == [(4, "a.2", 'unquoted NO is the boolean false in YAML 1.1 but text in YAML 1.2; '
                                   'write "NO" in quotes if you mean text, or false')]


# --- merge keys -----------------------------------------------------------------------------

def test_plain_merge_key_merges():
    data, _, problems = _one("<<: [{a: 1}, {b: 2}]\nb: 3\n")
    assert data == {"b": 3, "a": 1} and problems == []


def test_quoted_merge_key_is_an_ordinary_key_even_when_its_value_has_plain_keys():
    data, lines, problems = _one('"<<": {1: 2, b: 3}\nc: 4\n')
    assert data == {"<<": {"1": 2, "b": 3}, "c": 4}
    assert lines[("<<",)] == 1 and problems == []


def test_merge_key_needs_mappings():
    parsed = parse(b"<<: [a, b]\nc: 1\n")
    assert parsed.documents == ()
    assert [(p.line, p.field, p.message) for p in parsed.problems] == [
        (1, "", "a merge key (<<) needs a mapping or a list of mappings")]


# --- limits -------------------------------------------------------------------------------

def test_many_values_without_aliases_are_accepted():
    parsed = parse(("[" + ",".join(["a"] * (MAX_NODES + 10)) + "]\n").encode())
    assert not parsed.problems and len(parsed.documents[0].data) == MAX_NODES + 10


def test_the_node_limit_is_checked_at_the_same_values_as_before():
    # Plain words are counted without a check; a value that may be a number or a special word
    # is checked where it stands, as the composer before the shortcuts did.
    for late in ("1", "name", "NO"):
        text = "- a\n" * MAX_NODES + f"- a\n- {late}\n" + "- a\n" * 5
        parsed = parse(text.encode())
        assert parsed.documents == ()
        assert [(p.line, p.message) for p in parsed.problems][-1:] == [
            (MAX_NODES + 2, "document expands to more than 100,000 values (an alias bomb?)")], late
    # With only plain words, the list is checked when it ends (line 1: where it starts).
    parsed = parse(("x:\n" + "  - a\n" * (MAX_NODES + 1)).encode())
    assert [(p.line, p.message) for p in parsed.problems] == [
        (2, "document expands to more than 100,000 values (an alias bomb?)")]


# --- the shortcut for plain text ------------------------------------------------------------

def _shortcut_says_text(text: str) -> bool:
    from reconciler.source import yamldocs as y

    return bool((text and text[0] not in y._MAYBE_NOT_TEXT)
                or (text not in y._SPECIAL_WORDS and text[0] not in y._NUMBER_START))


def test_the_plain_text_shortcut_agrees_with_the_full_resolution():
    import random

    from reconciler.source.yamldocs import _BOOL11_ONLY, _BOOL12, _NULL, _resolve_plain

    rng = random.Random(7)
    alphabet = "0123456789+-._:eExXoObB~<tTfFnNyYaA# /@"
    samples = set(_NULL) | set(_BOOL12) | set(_BOOL11_ONLY) | {
        "<<", "<", "0777", "0o17", "0x1F", "1_000", "12:30", "1:2:3.5", "2024-01-01", "1e3", ".5", "+1", ".inf",
        "-.Inf", ".nan", "nan", "inf", "name", "nix", "flake", "tenants", "yes-please", "on-call", "true-ish", "~x",
        "<<x", "é", "✓", "_x", "/p", "$v", "@x", "`x", "%x",
    }
    while len(samples) < 20_000:
        samples.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))))
    for text in samples:
        if _shortcut_says_text(text):
            assert _resolve_plain(text) == (text, None), text
            assert text != "<<"


# --- lines ------------------------------------------------------------------------------------

def test_lines_of_keys_items_duplicates_and_merges():
    text = ("a:\n  x: 1\n  v: [p, q]\n"
            "a:\n  x: 2\n"
            "l:\n  - k: v\n  - [1, 2]\n"
            "m: &m {u: 1}\n"
            "r:\n  <<: *m\n  w: 2\n")
    parsed = parse(text.encode())
    lines = parsed.documents[0].lines
    assert lines == {
        (): 1,
        ("a", "x"): 5, ("a", "v"): 3, ("a", "v", 0): 3, ("a", "v", 1): 3, ("a",): 4,
        ("l",): 6, ("l", 0): 7, ("l", 0, "k"): 7, ("l", 1): 8, ("l", 1, 0): 8, ("l", 1, 1): 8,
        ("m",): 9, ("m", "u"): 9,
        ("r",): 10, ("r", "w"): 12,
    }
    assert [(p.line, p.field, p.message) for p in parsed.problems] == [
        (4, "a", "key 'a' appears twice (lines 1 and 4); remove one")]
    assert lines.get(("a", "x")) == 5 and lines.get(("nope",)) is None and ("l", 1, 1) in lines
    assert len(lines) == 16 and set(lines) == set(dict(lines))
    assert repr(lines).startswith("Lines({")


def test_lines_without_a_top_level_field():
    parsed = parse(b"kind: K\nspec:\n  a: 1\n  b: [x]\nstatus:\n  phase: Ready\n  conditions:\n    - type: T\n")
    lines = parsed.documents[0].lines
    without = lines.without("status")
    assert without == {(): 1, ("kind",): 1, ("spec",): 2, ("spec", "a"): 3, ("spec", "b"): 4, ("spec", "b", 0): 4}
    assert lines.without("nothing") is lines and without.without("status") is without
    assert len(lines) == 11  # the original is untouched (and now built)
    assert lines.without("status") == without and lines.without("nothing") is lines
    scalar = parse(b"just text\n").documents[0].lines
    assert scalar == {(): 1} and scalar.without("status") is scalar

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

"""Status write-back into files: only the status block changes, byte for byte elsewhere."""

from __future__ import annotations

import random
import re

import pytest

from reconciler.source.yamldocs import parse
from reconciler.status import (StatusEditError, apply_status, merge_conditions, only_status_changed, read_status,
                               status_changed)
from reconciler.validation.objects import check_document
from tests.helpers import EXAMPLES

STATUS = {
    "phase": "Succeeded",
    "observedRevision": "0123456789abcdef0123456789abcdef01234567",
    "selection": {
        "infrastructure": "kubernetes",
        "provider": "eks-prod",
        "pool": "general",
        "reason": "matches method docker; lowest load (2/10 running)",
        "confidence": 0.85,
        "alternatives": [{"provider": "gke-eu", "pool": "gpu", "reason": "no: team web is not served", "score": 0.4}],
    },
    "run": {"cluster": "eks-prod", "namespace": "if-web", "name": "frontend-0123456", "kind": "PipelineRun"},
    "startTime": "2026-11-23T10:00:00Z",
    "completionTime": "2026-11-23T10:04:31Z",
    "conditions": [{"type": "Succeeded", "status": "True", "reason": "Completed",
                    "message": "Tasks Completed: 3 (Failed: 0, Cancelled 0), Skipped: 1",
                    "lastTransitionTime": "2026-11-23T10:04:31Z"}],
}

ODD = b"""# A build, written by hand.   
apiVersion: imagefactory.dev/v1alpha1   # trailing comment
kind: "BuildRequest"
metadata:
   name: frontend          # three-space indent
   labels: {team: web, tier: 'front'}

spec:
   method: docker
   source: &src
      git: https://github.com/acme/web.git
      revision: 'main'
   image: registry.acme.example/web/frontend:1.2.3
   platforms: [linux/amd64,
      linux/arm64]

# a comment that ends the file, and no final newline"""

MULTI = b"""# first
apiVersion: imagefactory.dev/v1alpha1
kind: BuildRequest
metadata:
  name: one
spec:
  method: docker
  source:
    git: https://x/one.git
  image: r/one:1
status:
  phase: Running
  conditions:
  - type: Succeeded
    status: Unknown
    reason: Running
---
# second, with a status in the middle
apiVersion: imagefactory.dev/v1alpha1
kind: BuildRequest
metadata:
  name: two
status:
  phase: Pending
  message: |
    text

spec:
  method: kaniko
  source:
    git: https://x/two.git
  image: r/two:1
...
---
{apiVersion: imagefactory.dev/v1alpha1, kind: BuildRequest, metadata: {name: three},
 spec: {method: docker, source: {git: "https://x/three.git"}, image: "r/three:1"}}
"""


def split_status(data: bytes, doc_index: int = 0) -> tuple[bytes, bytes, bytes]:
    """(before, status block, after) found by a plain line scan, independent of the code
    under test: from the column-0 ``status:`` line of the document to the last indented
    line before the next column-0 line."""
    lines = data.splitlines(keepends=True)
    doc, start = 0, None
    for n, line in enumerate(lines):
        if re.match(rb"^---\s*$", line) and n > 0:
            doc += 1
            continue
        if doc == doc_index and re.match(rb"^status:", line):
            start = n
            break
    if start is None:
        return data, b"", b""
    end = start + 1
    while end < len(lines) and (lines[end][:1] in (b" ", b"\t") or not lines[end].strip()):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return b"".join(lines[:start]), b"".join(lines[start:end]), b"".join(lines[end:])


def assert_outside_equal(original: bytes, edited: bytes, doc_index: int = 0) -> None:
    b0, _, a0 = split_status(original, doc_index)
    b1, block, a1 = split_status(edited, doc_index)
    if not _ and block:  # added: the original is split at the insertion point
        assert original == b1 + a1 or original == b1.rstrip(b"\r\n") + a1 or original == b1 + a1.lstrip(b"\r\n"), (original, edited)
    else:
        assert (b0, a0) == (b1, a1)


def assert_loads_clean(data: bytes, doc_index: int, status: dict | None) -> None:
    parsed = parse(data)
    assert parsed.problems == (), parsed.problems
    assert parsed.documents[doc_index].data.get("status") == status


def test_add_keeps_every_other_byte_and_goes_last():
    out = apply_status(ODD, STATUS)
    before, block, after = split_status(out)
    assert before.startswith(ODD[: ODD.index(b"\n# a comment")])
    assert after == b"\n# a comment that ends the file, and no final newline"
    assert out.replace(block, b"") == ODD.replace(b"linux/arm64]\n", b"linux/arm64]\n", 1)
    assert before + after == ODD  # nothing outside the block moved, not even a newline
    assert block.startswith(b"status:\n   phase: Succeeded\n")  # the file's own three-space indent
    assert_loads_clean(out, 0, STATUS)
    # status is the last top-level key
    assert list(parse(out).documents[0].data)[-1] == "status"


def test_no_final_newline_is_kept_when_status_ends_the_file():
    src = b"apiVersion: imagefactory.dev/v1alpha1\nkind: BuildRequest\nmetadata:\n  name: x\nspec:\n  image: r/x:1"
    out = apply_status(src, {"phase": "Pending"})
    assert out == src + b"\nstatus:\n  phase: Pending"
    assert apply_status(out, None) == src
    assert apply_status(out, {"phase": "Running"}) == src + b"\nstatus:\n  phase: Running"


def test_replace_in_place_in_the_middle_of_a_document():
    out = apply_status(MULTI, STATUS, doc_index=1)
    assert_outside_equal(MULTI, out, 1)
    assert_loads_clean(out, 1, STATUS)
    docs = parse(out).documents
    assert list(docs[1].data) == ["apiVersion", "kind", "metadata", "status", "spec"]  # not moved
    assert docs[0].data["status"]["phase"] == "Running" and docs[2].data.get("status") is None
    # the blank line between the old block and spec: is the user's and stays
    assert b"Completed: 3 (Failed: 0, Cancelled 0), Skipped: 1\"\n    lastTransitionTime: \"2026-11-23T10:04:31Z\"\n\nspec:" in out


def test_each_document_separately_and_flow_document_refused():
    out0 = apply_status(MULTI, {"phase": "Failed"}, doc_index=0)
    assert_outside_equal(MULTI, out0, 0)
    assert parse(out0).documents[0].data["status"] == {"phase": "Failed"}
    assert parse(out0).documents[1].data["status"] == parse(MULTI).documents[1].data["status"]
    with pytest.raises(StatusEditError, match="flow mapping"):
        apply_status(MULTI, STATUS, doc_index=2)
    with pytest.raises(StatusEditError, match="no document 3"):
        apply_status(MULTI, STATUS, doc_index=3)


def test_remove():
    out = apply_status(MULTI, None, doc_index=0)
    assert b"phase: Running" not in out
    assert out == MULTI.replace(b"status:\n  phase: Running\n  conditions:\n  - type: Succeeded\n    status: Unknown\n    reason: Running\n", b"")
    assert apply_status(ODD, None) == ODD  # nothing to remove: the very same bytes


def test_crlf_line_endings_are_kept():
    crlf = ODD.replace(b"\n", b"\r\n")
    out = apply_status(crlf, STATUS)
    assert b"\n" not in out.replace(b"\r\n", b"")
    before, block, after = split_status(out)
    assert before + after == crlf
    assert_loads_clean(out, 0, STATUS)
    assert apply_status(out, None) == crlf
    multi = MULTI.replace(b"\n", b"\r\n")
    out = apply_status(multi, STATUS, doc_index=1)
    assert b"\n" not in out.replace(b"\r\n", b"")
    assert_outside_equal(multi, out, 1)


def test_bom_anchors_and_aliases_survive():
    src = ("\ufeff" + "apiVersion: imagefactory.dev/v1alpha1\nkind: BuildRequest\nmetadata: &m\n  name: a\n"
           "spec:\n  method: docker\n  source: {git: 'https://x/a.git'}\n  image: r/a:1\nx-copy: *m\n").encode()
    out = apply_status(src, {"phase": "Queued"})
    assert out == src + b"status:\n  phase: Queued\n"


def test_same_status_same_bytes_and_idempotent():
    once = apply_status(ODD, STATUS)
    assert apply_status(once, STATUS) == once
    assert apply_status(apply_status(ODD, {"phase": "Running"}), STATUS) == once


def test_ambiguous_scalars_are_quoted_for_yaml_1_1_readers():
    tricky = {"phase": "Running", "observedRevision": "1234567", "a": "2026-11-23", "b": "on", "c": "NO", "d": "0777",
              "e": "1e10", "f": "null", "g": "", "h": " padded ", "i": "yes: really", "j": "#hash", "k": "a: b",
              "l": "- dash", "m": "@at", "n": "line\nbreak", "o": "tab\there", "p": "12:30:00", "q": "0x1F", "r": ".inf",
              "s": "~", "t": "ünïcode", "u": "it's", "v": 'say "hi"', "w": True, "x": 3, "y": 1e-05, "z": 0.5, "zz": 1e300,
              "list": ["y", "n", "2026-01-01T00:00:00Z"]}
    out = apply_status(b"kind: BuildRequest\n", tricky)
    assert_loads_clean(out, 0, tricky)
    for plain in (b"  phase: Running\n", b"  w: true\n", b"  x: 3\n", b"  \"y\": 1.0e-05\n", b"  z: 0.5\n"):
        assert plain in out
    for quoted in (b'"1234567"', b'"2026-11-23"', b'"on"', b'"NO"', b'"0777"', b'"1e10"', b'"null"', b'"~"'):
        assert quoted in out


def test_random_hostile_strings_always_read_back():
    rng = random.Random(7)
    alphabet = "aZ09 -:#{}[],&*!|>'\"%@`?\\\n\t.~+=_/\u00e9\u2028\x85"
    for _ in range(300):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        status = {"phase": "Failed", "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed", "message": value}]}
        out = apply_status(ODD, status)
        assert_loads_clean(out, 0, status)
        assert split_status(out)[0] + split_status(out)[2] == ODD


def test_sequence_style_follows_the_file():
    k8s = b"kind: BuildRequest\nspec:\n  platforms:\n  - linux/amd64\n"
    nested = b"kind: BuildRequest\nspec:\n  platforms:\n    - linux/amd64\n"
    status = {"conditions": [{"type": "Succeeded", "status": "True"}]}
    assert apply_status(k8s, status).endswith(b"status:\n  conditions:\n  - type: Succeeded\n    status: \"True\"\n")
    assert apply_status(nested, status).endswith(b"status:\n  conditions:\n    - type: Succeeded\n      status: \"True\"\n")


def test_every_example_build_takes_a_full_status_and_stays_valid():
    for path in sorted((EXAMPLES / "builds").rglob("*.yaml")):
        original = path.read_bytes()
        out = apply_status(original, STATUS)
        before, block, after = split_status(out)
        assert before + after == original, path
        parsed = parse(out)
        assert parsed.problems == ()
        checked = check_document(parsed.documents[0], "BuildRequest")
        assert checked.problems == (), (path, checked.problems)
        assert checked.model.status.selection.provider == "eks-prod"
        assert read_status(out) == STATUS


def test_pydantic_status_and_none_fields():
    from reconciler.models.status import BuildStatus

    model = BuildStatus.model_validate(STATUS)
    out = apply_status(ODD, model)
    assert read_status(out) == STATUS
    assert apply_status(ODD, {**STATUS, "run": None}) == apply_status(ODD, {k: v for k, v in STATUS.items() if k != "run"})


def test_status_changed_ignores_timestamp_churn_only():
    old = {"phase": "Running", "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running",
                                               "lastTransitionTime": "2026-11-23T10:00:00Z"}]}
    churn = {"phase": "Running", "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running",
                                                 "lastTransitionTime": "2026-11-23T10:05:00Z"}]}
    assert not status_changed(old, churn)
    assert not status_changed(old, {**churn, "observedRevision": None})
    assert status_changed(old, {**churn, "phase": "Succeeded"})
    flipped = {"phase": "Running", "conditions": [{"type": "Succeeded", "status": "True", "reason": "Running",
                                                   "lastTransitionTime": "2026-11-23T10:05:00Z"}]}
    assert status_changed(old, flipped)
    assert status_changed(old, {**churn, "conditions": [{**churn["conditions"][0], "message": "2 tasks left"}]})
    assert status_changed(None, old)
    assert status_changed(old, {**old, "startTime": "2026-11-23T10:00:00Z"})


def test_merge_conditions_moves_transition_time_only_on_change():
    old = [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "lastTransitionTime": "T1"}]
    same = merge_conditions(old, [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": "x"}], "T2")
    assert same[0]["lastTransitionTime"] == "T1" and same[0]["message"] == "x"
    flipped = merge_conditions(old, [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}], "T2")
    assert flipped[0]["lastTransitionTime"] == "T2"
    observed = merge_conditions(None, [{"type": "Succeeded", "status": "True", "lastTransitionTime": "T0"}], "T2")
    assert observed[0]["lastTransitionTime"] == "T0"


def test_only_status_changed():
    out = apply_status(ODD, STATUS)
    assert only_status_changed(ODD, out)
    assert only_status_changed(out, apply_status(out, {"phase": "Failed"}))
    assert not only_status_changed(ODD, out.replace(b"method: docker", b"method: kaniko"))
    assert not only_status_changed(ODD, None)
    assert not only_status_changed(MULTI, apply_status(MULTI, None, 0) + b"---\nkind: X\n")
    assert not only_status_changed(ODD, b"key: [unclosed")


EDGES = [
    b"a: 1\n---\nb: 2\n",  # status goes into document 0, before the next document's marker
    b"%YAML 1.2\n--- # c\na: 1\n...\n",  # directive, marker with a comment, explicit document end
    b"a: |+\n  keep\n\n\n# footer\n",  # keep chomping: the blank lines are part of a's value
    b"a: >+\n  x\n\nb: |-\n  y\n\n",
    b"a:\n  - 1\n  # indented trailing comment\n\n# col0\n",  # the comment stays with a's block
    b"  a: 1\n  b: 2\n",  # an indented root mapping
    b"a: 'multi\n  line'\n",
    b"a: 1\nstatus: {phase: Old}  # flow status\nb: 2\n",
    b"a: 1\r\nstatus:\r\n  phase: Old\r\n\r\n\r\nb: 2",
    b"a: &x {p: 1}\nb: *x\nc: !!str 3\n",
]


@pytest.mark.parametrize("src", EDGES)
def test_edge_layouts_round_trip_and_keep_their_data(src):
    out = apply_status(src, {"phase": "New", "startTime": "2026-11-23T10:00:00Z"})
    parsed_before, parsed_after = parse(src), parse(out)
    assert parsed_after.problems == ()
    for a, b in zip(parsed_before.documents, parsed_after.documents):
        assert {k: v for k, v in a.data.items() if k != "status"} == {k: v for k, v in b.data.items() if k != "status"}
    assert parsed_after.documents[0].data["status"] == {"phase": "New", "startTime": "2026-11-23T10:00:00Z"}
    if b"status" not in src:
        assert apply_status(out, None) == src  # add then remove gives back the very same bytes
    assert apply_status(out, {"phase": "New", "startTime": "2026-11-23T10:00:00Z"}) == out

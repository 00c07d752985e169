"""The fast status emitter writes exactly what ruamel.yaml writes, or leaves the value to it."""

from __future__ import annotations

import random

import pytest
import yaml

from reconciler.status.emitting import emit_block
from reconciler.status.writeback import apply_status, read_status, ruamel_block

LAYOUTS = [(2, 2), (2, 0), (4, 2), (4, 0), (4, 4), (3, 1)]

STRINGS = [
    "Succeeded", "local-general", "gke-eu/gpu-pool", "tekton", "True", "False", "yes", "No", "on", "null", "y",
    "", " leading", "trailing ", "a: b", "a #b", "#comment", "- dash", "1.0", "0777", "1e3", "0x1F", "12:30",
    "2026-11-23T10:00:00Z", "0123456789abcdef0123456789abcdef01234567", "~", "*alias", "&anchor", "!tag", "%dir",
    "@at", "`tick`", "{flow}", "[list]", "a, b", "quote\"d", "back\\slash", "it's", "line1\nline2", "\ttab",
    "héllo wörld ☃", "日本語", "emoji 🚀", "nbsp\u00a0here", "nel\x85x", "ls\u2028x", "bom\ufeffx", "bell\x07",
    "del\x7f", "x" * 5000, "word " * 300, "pool gpu has no free slot (10/10 running); it comes back when one ends",
    "provider eks-prod: Unhealthy: connection refused (https://10.0.0.1:6443)",
]
NUMBERS = [0, 1, -7, 10**20, 0.5, 1e-05, 1.5e300, -0.0, 0.1, float("inf"), float("-inf"), True, False]


def realistic() -> dict:
    alternatives = [{"provider": f"prov-{i}", "pool": f"pool-{i}", "confidence": round(0.9 - i / 20, 3),
                     "whyNot": f"pool pool-{i} serves teams ml, data; not web"} for i in range(10)]
    return {"phase": "Running", "observedRevision": "0123456789abcdef0123456789abcdef01234567",
            "selection": {"infrastructure": "kubernetes", "provider": "local", "pool": "local-general",
                          "reason": "Healthy provider local, pool local-general serves team web", "confidence": 0.83,
                          "alternatives": alternatives},
            "run": {"cluster": "local", "namespace": "team-web", "name": "frontend-3f9c2a1b0d", "kind": "PipelineRun"},
            "startTime": "2026-11-23T10:00:00Z",
            "conditions": [{"type": "Scheduled", "status": "True", "reason": "Admitted", "message": "ok",
                            "lastTransitionTime": "2026-11-23T10:00:00Z"},
                           {"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": "",
                            "lastTransitionTime": "2026-11-23T10:00:01Z"}]}


def generated(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth < 4 and roll < 0.25:
        return {rng.choice(STRINGS[:12] + ["key", "a b", "x-y"]) + str(i): generated(rng, depth + 1)
                for i in range(rng.randint(0, 4))}
    if depth < 4 and roll < 0.45:
        return [generated(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return rng.choice(STRINGS + NUMBERS)


@pytest.mark.parametrize("mapping_indent,seq_offset", LAYOUTS)
def test_the_same_bytes_as_ruamel(mapping_indent, seq_offset):
    rng = random.Random(f"{mapping_indent}/{seq_offset}")
    cases = [realistic()] + [{"phase": "Failed", "detail": generated(rng)} for _ in range(400)]
    fast = 0
    for status in cases:
        text = emit_block("status", status, mapping_indent, seq_offset)
        if text is not None:
            fast += 1
            assert text == ruamel_block(status, mapping_indent, seq_offset), status
    assert emit_block("status", realistic(), mapping_indent, seq_offset) is not None
    assert fast > len(cases) // 3  # (the comparison is not vacuous)


@pytest.mark.parametrize("value", ["nel\x85x", "ls\u2028x", "bom\ufeffx", "bell\x07", "x" * 5000, [["nested"]], None])
def test_what_it_leaves_to_ruamel(value):
    assert emit_block("status", {"message": value}) is None


def test_a_status_written_with_it_reads_back_and_leaves_the_file_alone():
    original = b"# a user's comment\napiVersion: imagefactory.dev/v1alpha1\nkind: BuildRequest\nmetadata:\n" \
               b"    name: frontend   # aligned\nspec: {method: docker}\n"
    status = realistic()
    out = apply_status(original, status)
    assert out.startswith(original) and read_status(out) == status
    assert yaml.safe_load(out)["status"] == status
    # the file's own indentation (4) is followed
    assert b"\nstatus:\n    phase: Running\n" in out

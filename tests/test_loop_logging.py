"""Structured logs: text and JSON, fields, context, redaction."""

from __future__ import annotations

import io
import json
import logging

import pytest

from reconciler import logging as flog


@pytest.fixture
def stream():
    out = io.StringIO()
    yield out
    flog.reset()


def test_json_lines_carry_build_provider_revision_and_context(stream):
    flog.setup(fmt="json", stream=stream)
    log = flog.get_logger("loop")
    with flog.log_context(revision="abc123", **{"pass": 7}):
        log.info("applied", extra=flog.fields(build="web/frontend", provider="eks-prod", pool=None))
    record = json.loads(stream.getvalue())
    assert record["msg"] == "applied" and record["level"] == "info" and record["logger"] == "image-factory.loop"
    assert record["build"] == "web/frontend" and record["provider"] == "eks-prod"
    assert record["revision"] == "abc123" and record["pass"] == 7
    assert "pool" not in record
    assert record["ts"].endswith("Z")


def test_text_lines_are_readable_with_key_value_fields(stream):
    flog.setup(fmt="text", stream=stream)
    flog.get_logger("loop").warning("pass failed", extra=flog.fields(build="web/x", reason="two words"))
    line = stream.getvalue().strip()
    assert "WARNING loop: pass failed build=web/x" in line
    assert 'reason="two words"' in line


def test_redactors_mask_secrets_in_messages_fields_and_tracebacks(stream):
    token = "ghp_0123456789abcdefTOKEN"
    flog.setup(fmt="json", stream=stream, redactors=[flog.redact_values(token)])
    log = flog.get_logger("source")
    log.info(f"fetching https://x-access-token:{token}@github.com/acme/gitops.git")
    log.info("header", extra=flog.fields(auth=f"Bearer {token}"))
    try:
        raise RuntimeError(f"clone failed for {token}")
    except RuntimeError:
        log.exception("boom")
    out = stream.getvalue()
    assert token not in out
    assert "https://***@github.com/acme/gitops.git" in out
    assert "[REDACTED]" in out


def test_a_custom_redactor_and_a_broken_one(stream):
    flog.setup(fmt="text", stream=stream, redactors=[lambda s: s.replace("AGE-SECRET-KEY", "[sealed]")])
    flog.get_logger().info("key AGE-SECRET-KEY-1XYZ")
    assert "[sealed]-1XYZ" in stream.getvalue()

    def broken(text):
        raise ValueError

    flog.add_redactor(broken)
    try:
        flog.get_logger().info("secret-ish")
    finally:
        flog.remove_redactor(broken)
    assert "withheld" in stream.getvalue() and "secret-ish" not in stream.getvalue()


def test_short_values_are_not_used_as_redaction_patterns():
    assert flog.redact_values("a", "", None)("a banana") == "a banana"


def test_bad_format_is_refused():
    with pytest.raises(ValueError):
        flog.setup(fmt="xml")


def test_modules_logging_by_module_name_get_the_same_format_and_redaction(stream):
    flog.setup(fmt="json", stream=stream, redactors=[flog.redact_values("hunter2-password")])
    logging.getLogger("reconciler.cluster.syncing").warning("sync failed with hunter2-password")
    record = json.loads(stream.getvalue())
    assert record["logger"] == "reconciler.cluster.syncing" and record["level"] == "warning"
    assert "hunter2" not in record["msg"]


def test_reset_restores_propagation(stream):
    flog.setup(stream=stream)
    flog.reset()
    for name in flog.ROOTS:
        assert logging.getLogger(name).propagate and not logging.getLogger(name).handlers

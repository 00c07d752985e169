"""Webhooks from GitHub, GitLab and Gitea, through the real HTTP server on 127.0.0.1 (random port).

Payloads and headers follow each provider's documented push event (trimmed to the fields a
receiver reads, plus some it must tolerate).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import http.client
import io
import json
import urllib.parse
from pathlib import Path

import pytest

from reconciler import logging as flog
from reconciler.loop.metrics import Metrics
from reconciler.loop.server import HttpServer
from reconciler.loop.triggers import TriggerQueue
from reconciler.loop.webhooks import WebhookReceiver, WebhookSecret

SECRET = "s3cr3t-webhook-value-0123456789"
AFTER = "bffeb74224043ba2feb48d137756c8a9331c449a"
BEFORE = "28e1879d029cb852e4844d9c718537df08844e03"

GITHUB_PUSH = {
    "ref": "refs/heads/main",
    "before": BEFORE,
    "after": AFTER,
    "repository": {
        "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": "gitops", "full_name": "acme/gitops",
        "private": True, "owner": {"name": "acme", "login": "acme"},
        "html_url": "https://github.com/acme/gitops", "clone_url": "https://github.com/acme/gitops.git",
        "ssh_url": "git@github.com:acme/gitops.git", "git_url": "git://github.com/acme/gitops.git",
        "default_branch": "main", "master_branch": "main",
    },
    "pusher": {"name": "alice", "email": "alice@example.com"},
    "sender": {"login": "alice", "id": 1},
    "created": False, "deleted": False, "forced": False, "base_ref": None,
    "compare": f"https://github.com/acme/gitops/compare/{BEFORE[:12]}...{AFTER[:12]}",
    "commits": [{"id": AFTER, "tree_id": "f" * 40, "distinct": True, "message": "builds/web: add frontend",
                 "timestamp": "2024-05-01T10:00:00+02:00", "url": f"https://github.com/acme/gitops/commit/{AFTER}",
                 "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
                 "committer": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
                 "added": ["builds/web/frontend.yaml"], "removed": [], "modified": []}],
    "head_commit": {"id": AFTER, "message": "builds/web: add frontend"},
}

GITLAB_PUSH = {
    "object_kind": "push", "event_name": "push",
    "before": BEFORE, "after": AFTER, "ref": "refs/heads/main", "ref_protected": True,
    "checkout_sha": AFTER,
    "user_id": 4, "user_name": "Alice", "user_username": "alice", "user_email": "", "user_avatar": "",
    "project_id": 15,
    "project": {
        "id": 15, "name": "gitops", "description": "", "web_url": "https://gitlab.example.com/acme/platform/gitops",
        "git_ssh_url": "git@gitlab.example.com:acme/platform/gitops.git",
        "git_http_url": "https://gitlab.example.com/acme/platform/gitops.git",
        "namespace": "platform", "visibility_level": 0, "path_with_namespace": "acme/platform/gitops",
        "default_branch": "main",
    },
    "repository": {
        "name": "gitops", "url": "git@gitlab.example.com:acme/platform/gitops.git", "description": "",
        "homepage": "https://gitlab.example.com/acme/platform/gitops",
        "git_http_url": "https://gitlab.example.com/acme/platform/gitops.git",
        "git_ssh_url": "git@gitlab.example.com:acme/platform/gitops.git", "visibility_level": 0,
    },
    "commits": [{"id": AFTER, "message": "builds/web: add frontend\n", "title": "builds/web: add frontend",
                 "timestamp": "2024-05-01T10:00:00+02:00",
                 "url": f"https://gitlab.example.com/acme/platform/gitops/-/commit/{AFTER}",
                 "author": {"name": "Alice", "email": "[REDACTED]"},
                 "added": ["builds/web/frontend.yaml"], "modified": [], "removed": []}],
    "total_commits_count": 1,
}

GITEA_PUSH = {
    "ref": "refs/heads/main", "before": BEFORE, "after": AFTER,
    "compare_url": f"https://gitea.example.com/acme/gitops/compare/{BEFORE}...{AFTER}",
    "commits": [{"id": AFTER, "message": "builds/web: add frontend\n",
                 "url": f"https://gitea.example.com/acme/gitops/commit/{AFTER}",
                 "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
                 "committer": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
                 "verification": None, "timestamp": "2024-05-01T10:00:00+02:00",
                 "added": ["builds/web/frontend.yaml"], "removed": [], "modified": []}],
    "total_commits": 1,
    "head_commit": {"id": AFTER},
    "repository": {
        "id": 140, "owner": {"id": 1, "login": "acme", "full_name": "", "username": "acme"},
        "name": "gitops", "full_name": "acme/gitops", "private": True, "fork": False,
        "html_url": "https://gitea.example.com/acme/gitops", "ssh_url": "git@gitea.example.com:acme/gitops.git",
        "clone_url": "https://gitea.example.com/acme/gitops.git", "default_branch": "main",
    },
    "pusher": {"id": 1, "login": "alice", "full_name": "Alice", "email": "alice@example.com", "username": "alice"},
    "sender": {"id": 1, "login": "alice", "username": "alice"},
}


def github_headers(body: bytes, secret: str = SECRET, event: str = "push") -> dict[str, str]:
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-GitHub-Hook-ID": "292430182", "X-Hub-Signature-256": f"sha256={sig}",
            "User-Agent": "GitHub-Hookshot/044aadd", "Content-Type": "application/json"}


def gitlab_headers(body: bytes, secret: str = SECRET, event: str = "Push Hook") -> dict[str, str]:
    return {"X-Gitlab-Event": event, "X-Gitlab-Token": secret, "X-Gitlab-Instance": "https://gitlab.example.com",
            "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e", "User-Agent": "GitLab/16.11.0",
            "Content-Type": "application/json"}


def gitea_headers(body: bytes, secret: str = SECRET, event: str = "push") -> dict[str, str]:
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # Gitea also sends the GitHub and Gogs headers for compatibility.
    return {"X-Gitea-Event": event, "X-Gitea-Event-Type": event, "X-Gitea-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473",
            "X-Gitea-Signature": sig, "X-GitHub-Event": event, "X-GitHub-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473",
            "X-Gogs-Event": event, "X-Gogs-Signature": sig, "X-Hub-Signature-256": f"sha256={sig}",
            "Content-Type": "application/json"}


PROVIDERS = {"github": (GITHUB_PUSH, github_headers), "gitlab": (GITLAB_PUSH, gitlab_headers),
             "gitea": (GITEA_PUSH, gitea_headers)}


@pytest.fixture
def server():
    queue = TriggerQueue()
    metrics = Metrics()
    receiver = WebhookReceiver(WebhookSecret(SECRET), lambda push: queue.notify("webhook", push.as_detail()),
                               branch="main", max_body=64 * 1024)
    srv = HttpServer(("127.0.0.1", 0), metrics=metrics, webhooks=receiver).start()
    srv.queue = queue
    try:
        yield srv
    finally:
        srv.stop()


def post(srv: HttpServer, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, {"text": raw.decode()}


def encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("path", ["/hooks/git", "/hooks/{provider}"])
def test_signed_push_to_the_watched_branch_is_queued(server, provider, path):
    payload, headers = PROVIDERS[provider]
    body = encode(payload)
    status, data = post(server, path.format(provider=provider), body, headers(body))
    assert status == 202, data
    assert data["result"] == "queued" and data["provider"] == provider and data["after"] == AFTER
    batch = server.queue.take(timeout=1)
    assert [t.reason for t in batch] == ["webhook"]
    assert batch[0].detail["after"] == AFTER and batch[0].detail["provider"] == provider
    assert batch[0].detail["repository"] in ("acme/gitops", "acme/platform/gitops")


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_bad_signature_is_401_and_queues_nothing(server, provider):
    payload, headers = PROVIDERS[provider]
    body = encode(payload)
    status, data = post(server, "/hooks/git", body, headers(body, secret="not-the-secret"))
    assert status == 401 and data["result"] == "unauthorized"
    assert server.queue.pending() == 0


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_body_changed_after_signing_is_401(server, provider):
    payload, headers = PROVIDERS[provider]
    signed = headers(encode(payload))
    tampered = copy.deepcopy(payload)
    tampered["after"] = "a" * 40
    status, _ = post(server, "/hooks/git", encode(tampered), signed)
    # GitLab sends a token, not a signature: the body is not covered, the token still matches.
    assert status == (202 if provider == "gitlab" else 401)


@pytest.mark.parametrize("provider,header", [("github", "X-Hub-Signature-256"), ("gitlab", "X-Gitlab-Token"),
                                             ("gitea", "X-Gitea-Signature")])
def test_missing_signature_is_401(server, provider, header):
    payload, headers = PROVIDERS[provider]
    body = encode(payload)
    h = headers(body)
    del h[header]
    status, data = post(server, "/hooks/git", body, h)
    assert status == 401 and header.lower() in data["message"].lower()
    assert server.queue.pending() == 0


def test_github_legacy_sha1_signature_alone_is_not_enough(server):
    body = encode(GITHUB_PUSH)
    h = github_headers(body)
    del h["X-Hub-Signature-256"]
    h["X-Hub-Signature"] = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert post(server, "/hooks/github", body, h)[0] == 401


@pytest.mark.parametrize("provider,event", [("github", "ping"), ("github", "pull_request"),
                                            ("gitlab", "Tag Push Hook"), ("gitlab", "Merge Request Hook"),
                                            ("gitea", "create"), ("gitea", "pull_request")])
def test_other_events_are_202_ignored(server, provider, event):
    payload, headers = PROVIDERS[provider]
    body = encode(payload)
    status, data = post(server, "/hooks/git", body, headers(body, event=event))
    assert status == 202 and data["result"] == "ignored"
    assert server.queue.pending() == 0


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_pushes_to_other_branches_tags_and_deletions_are_ignored(server, provider):
    payload, headers = PROVIDERS[provider]
    cases = {
        "other branch": {"ref": "refs/heads/feature/x"},
        "tag": {"ref": "refs/tags/v1.0.0"},
        "deletion": {"after": "0" * 40, "checkout_sha": None, "deleted": True},
    }
    for name, change in cases.items():
        body = encode({**payload, **change})
        status, data = post(server, "/hooks/git", body, headers(body))
        assert (status, data["result"]) == (202, "ignored"), name
    assert server.queue.pending() == 0


def test_default_branch_from_the_payload_when_no_branch_is_configured():
    queue = TriggerQueue()
    receiver = WebhookReceiver(WebhookSecret(SECRET), lambda p: queue.notify("webhook"))
    body = encode({**GITHUB_PUSH, "ref": "refs/heads/develop"})
    assert receiver.handle(github_headers(body), body).result == "ignored"
    body = encode(GITHUB_PUSH)
    assert receiver.handle(github_headers(body), body).result == "queued"


@pytest.mark.parametrize("body,why", [(b"{not json", "not JSON"), (b"[1, 2]", "not a JSON object"),
                                      (json.dumps({"ref": "refs/heads/main"}).encode(), "repository"),
                                      (json.dumps({**GITHUB_PUSH, "after": "xyz"}).encode(), "commit id"),
                                      (b"\xff\xfe", "UTF-8")])
def test_authentic_but_malformed_bodies_are_400(server, body, why):
    status, data = post(server, "/hooks/github", body, github_headers(body))
    assert status == 400 and why in data["message"]


def test_requests_without_provider_headers_are_400(server):
    body = encode(GITHUB_PUSH)
    status, data = post(server, "/hooks/git", body, {"Content-Type": "application/json"})
    assert status == 400 and "not a GitHub, GitLab or Gitea webhook" in data["message"]


def test_github_form_encoded_payload_is_accepted(server):
    body = urllib.parse.urlencode({"payload": json.dumps(GITHUB_PUSH)}).encode()
    h = {**github_headers(body), "Content-Type": "application/x-www-form-urlencoded"}
    status, data = post(server, "/hooks/github", body, h)
    assert status == 202 and data["result"] == "queued"


def test_body_over_the_limit_is_413_without_being_read(server):
    body = encode({**GITHUB_PUSH, "padding": "x" * (70 * 1024)})
    status, data = post(server, "/hooks/git", body, github_headers(body))
    assert status == 413
    assert server.queue.pending() == 0


def test_missing_content_length_is_411(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/hooks/git")
    conn.putheader("X-GitHub-Event", "push")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"0\r\n\r\n")
    assert conn.getresponse().status == 411
    conn.close()


def test_unknown_paths_and_methods(server):
    assert post(server, "/hooks/bitbucket", b"{}", {})[0] == 404
    assert post(server, "/elsewhere", b"{}", {})[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/hooks/git")
    assert conn.getresponse().status == 405
    conn.close()


def test_webhooks_disabled_without_a_secret():
    srv = HttpServer(("127.0.0.1", 0), metrics=Metrics()).start()
    try:
        body = encode(GITHUB_PUSH)
        status, data = post(srv, "/hooks/git", body, github_headers(body))
        assert status == 404 and "no webhook secret" in data["text"]
    finally:
        srv.stop()


def test_closed_queue_answers_503():
    queue = TriggerQueue()
    queue.close()
    receiver = WebhookReceiver(WebhookSecret(SECRET), lambda p: queue.notify("webhook"), branch="main")
    body = encode(GITEA_PUSH)
    assert receiver.handle(gitea_headers(body), body).status == 503


def test_webhook_results_are_counted_in_metrics(server):
    body = encode(GITHUB_PUSH)
    post(server, "/hooks/git", body, github_headers(body))
    post(server, "/hooks/git", body, github_headers(body, secret="wrong-secret"))
    text = server.metrics.exposition().decode()
    assert 'image_factory_webhook_requests_total{provider="github",result="queued"} 1.0' in text
    assert 'image_factory_webhook_requests_total{provider="github",result="unauthorized"} 1.0' in text


# -- the secret -------------------------------------------------------------------------------------

def test_secret_from_env_or_file_and_rotation(tmp_path: Path):
    assert WebhookSecret.from_env({}) is None
    assert WebhookSecret.from_env({"IMAGE_FACTORY_WEBHOOK_SECRET": " abc123xyz \n"}).value() == b"abc123xyz"
    path = tmp_path / "secret"
    path.write_text("first-secret-value\n")
    secret = WebhookSecret.from_env({"IMAGE_FACTORY_WEBHOOK_SECRET_FILE": str(path)})
    assert secret.value() == b"first-secret-value"
    path.write_text("second-secret-value-longer\n")  # a rotated Kubernetes Secret
    assert secret.value() == b"second-secret-value-longer"
    assert "second" not in repr(secret)
    from reconciler.errors import UsageError
    with pytest.raises(UsageError):
        WebhookSecret.from_env({"IMAGE_FACTORY_WEBHOOK_SECRET": "a", "IMAGE_FACTORY_WEBHOOK_SECRET_FILE": str(path)})
    with pytest.raises(UsageError):
        WebhookSecret.from_env({"IMAGE_FACTORY_WEBHOOK_SECRET_FILE": str(tmp_path / "missing")})


def test_the_secret_never_reaches_the_logs(server):
    stream = io.StringIO()
    flog.setup(fmt="json", level="debug", stream=stream, redactors=[flog.redact_values(SECRET)])
    try:
        for provider, (payload, headers) in PROVIDERS.items():
            body = encode(payload)
            post(server, "/hooks/git", body, headers(body))
            post(server, "/hooks/git", body, headers(body, secret=SECRET + "x"))
            # a message that carries the secret by accident is masked too
            flog.get_logger("test").info(f"oops {SECRET}")
    finally:
        flog.reset()
    out = stream.getvalue()
    assert "webhook queued" in out and "webhook unauthorized" in out
    assert SECRET not in out
    assert "[REDACTED]" in out

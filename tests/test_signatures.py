"""Signature verification with real ssh-keygen keys and real signed commits."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reconciler.source.signatures import verify

from .helpers import git


def _key(tmp: Path, name: str) -> Path:
    key = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def _commit(repo: Path, message: str, key: Path | None = None) -> str:
    (repo / "f.txt").write_text(message)
    git(repo, "add", "f.txt")
    args = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-q", "-S", "-m", message] if key else [
        "commit", "-q", "-m", message]
    git(repo, *args)
    return git(repo, "rev-parse", "HEAD").strip()


def test_ssh_signatures_good_unknown_and_unsigned(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    alice, mallory = _key(tmp_path, "alice"), _key(tmp_path, "mallory")
    signed = _commit(repo, "by alice", alice)
    forged = _commit(repo, "by mallory claiming alice", mallory)
    plain = _commit(repo, "unsigned")
    allowed = f"alice@acme.example {Path(str(alice) + '.pub').read_text().strip()}\n".encode()
    result = verify(str(repo), [signed, forged, plain], allowed_signers=allowed)
    assert result[signed].status == "good" and result[signed].signer == "alice@acme.example"
    assert result[forged].status == "bad" and result[forged].signer is None
    assert result[plain].status == "none"
    # Without trust roots nothing is good.
    assert verify(str(repo), [signed])[signed].status == "bad"

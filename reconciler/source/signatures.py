"""Which commits carry a signature that Git verifies, and whose it is.

Used when factory.yaml says ``identity.source: signature``. The trust roots (an SSH
allowed-signers file or a GPG keyring) are read from the repository *at the base
revision*, never from the change under review, so a PR cannot trust its own key.

Git does the verification (``%G?`` / ``%GS`` of ``git log``); this module only gives it the
trust roots in a private temporary directory and reads the verdicts.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

from ..errors import SourceError

_EMAIL = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


@dataclass(frozen=True)
class SignatureCheck:
    status: str  # "good", "bad" or "none"
    signer: str | None  # SSH principal or GPG uid e-mail when good
    detail: str  # git's one-letter code, for messages


def verify(repo: str, shas: list[str], allowed_signers: bytes | None = None,
           gpg_keyring: bytes | None = None) -> dict[str, SignatureCheck]:
    """Verify each commit's signature against the given trust roots."""
    if not shas:
        return {}
    with tempfile.TemporaryDirectory(prefix="if-verify-") as tmp:
        os.chmod(tmp, 0o700)
        config = ["-c", "gpg.ssh.allowedSignersFile=" + _write(tmp, "allowed_signers", allowed_signers or b"")]
        env = {**os.environ, "GNUPGHOME": os.path.join(tmp, "gnupg")}
        os.mkdir(env["GNUPGHOME"], 0o700)
        if gpg_keyring:
            keyring = _write(tmp, "keyring.gpg", gpg_keyring)
            subprocess.run(["gpg", "--batch", "--quiet", "--import", keyring], env=env, capture_output=True, check=False)
            # Trust every imported key fully: the keyring file is the list of who is trusted.
            listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys"], env=env,
                                     capture_output=True, text=True, check=False).stdout
            owner = "".join(f"{line.split(':')[9]}:6:\n" for line in listing.splitlines() if line.startswith("fpr:"))
            subprocess.run(["gpg", "--batch", "--import-ownertrust"], input=owner.encode(), env=env,
                           capture_output=True, check=False)
        proc = subprocess.run(
            ["git", "-C", repo, *config, "log", "--no-walk=unsorted", "--format=%H%x00%G?%x00%GS%x00", *shas],
            capture_output=True, env=env, check=False,
        )
    if proc.returncode != 0:
        raise SourceError(f"git log failed while verifying signatures: {proc.stderr.decode(errors='replace').strip()[:200]}")
    out: dict[str, SignatureCheck] = {}
    fields = proc.stdout.decode("utf-8", "replace").split("\x00")
    for i in range(0, len(fields) - 2, 3):
        sha, code, signer = fields[i].strip(), fields[i + 1].strip(), fields[i + 2].strip()
        if not sha:
            continue
        if code == "G":  # U = valid signature by a key we do not trust: not good enough
            match = _EMAIL.search(signer)
            out[sha] = SignatureCheck("good", match.group(1) if match else signer or None, code)
        elif code == "N":
            out[sha] = SignatureCheck("none", None, code)
        else:
            out[sha] = SignatureCheck("bad", None, code)
    return out


def _write(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path

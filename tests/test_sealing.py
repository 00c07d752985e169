"""Sealed provider credentials: the format, tamper and binding checks, rotation, the commands,
key file permissions, redaction, and the marker sweep (a known secret never leaks anywhere)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import stat
import typing
from pathlib import Path

import pytest
import yaml

from reconciler import sealing
from reconciler.errors import SealingError, TerminalError
from reconciler.sealing import Keyring, Redactor

from .helpers import EXAMPLES, ROOT, cli, copy_examples, init_repo

FIXTURES = ROOT / "tests" / "fixtures" / "sealing"
TEST_KEY = FIXTURES / "test-factory.key"
TEST_PUB = FIXTURES / "test-factory.pub"
TEST_KID = "0b5827db1ea0887f"
SEALED_RE = re.compile(r"^sealed:v1:[A-Za-z0-9_.:=-]+$")  # the models' contract
MARKER = "MARKER-5f0c-do-not-leak"
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJkekNDQVIyZ0F3SUJBZ0lCQURBS0JnZ3Foa2pPUFFRREFqQWpNU0V3SHdZRFZRUUREQmhyTTNNdApjMlZ5ZG1WeUxXTmhRREUzTURBd01EQXdNREF3SGhjTk1qUXdNVEF4TURBd01EQXdXaGNOTXpRd01UQXhNREF3Ck1EQXdXakFqTVNFd0h3WURWUVFEREJock0zTXRjMlZ5ZG1WeUxXTmhRREUzTURBd01EQXdNREF3V1RBVEJnY3EKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    server: https://k8s.lab.example:6443
  name: lab
users:
- name: admin
  user:
    token: eyJhbGciOiJSUzI1NiIsImtpZCI6ImZha2UifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZmFrZSJ9.c2lnbmF0dXJlLWZha2U
"""


@pytest.fixture(scope="module")
def test_key():
    return sealing.load_private_key(TEST_KEY)


@pytest.fixture(scope="module")
def test_pub():
    return sealing.load_public_key(TEST_PUB)


@pytest.fixture()
def ring(test_key) -> Keyring:
    return Keyring([test_key], redactor=Redactor())


def _parts(value: str) -> list[str]:
    assert value.startswith("sealed:v1:")
    return value[len("sealed:v1:"):].split(":")


def _join(parts: list[str]) -> str:
    return "sealed:v1:" + ":".join(parts)


def _flip(part: str) -> str:
    """Flip one bit of a base64url part (in the middle: a real change, not padding bits)."""
    raw = bytearray(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def _no_secret_in(message: str, value: str, plaintext: str) -> None:
    assert plaintext not in message
    for part in _parts(value)[1:]:  # the key id is public and may be named
        assert part not in message, message
    assert "\n" not in message


# --- format and round trip ---------------------------------------------------------------

@pytest.mark.parametrize("plaintext", [b"t", "fake-token-\u00e9\u4e2d".encode(), KUBECONFIG.encode(), bytes(range(256)) * 40])
def test_round_trip(ring, test_pub, plaintext: bytes):
    value = sealing.seal(test_pub, "prod", "token", plaintext)
    assert SEALED_RE.match(value) and "\n" not in value
    assert _parts(value)[0] == TEST_KID == sealing.sealed_key_id(value)
    assert ring.open("prod", "token", value) == plaintext


def test_values_are_randomized_and_compact(test_pub):
    a = sealing.seal(test_pub, "prod", "token", b"x" * 40)
    b = sealing.seal(test_pub, "prod", "token", b"x" * 40)
    assert a != b and _parts(a)[1] != _parts(b)[1] and _parts(a)[2] != _parts(b)[2]
    assert len(a) < 200


def test_key_id_is_a_fingerprint_of_the_public_key(test_key, test_pub):
    import hashlib

    from cryptography.hazmat.primitives import serialization

    der = test_pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert sealing.key_id(test_pub) == sealing.key_id(test_key) == hashlib.sha256(der).hexdigest()[:16] == TEST_KID


def test_sealed_values_satisfy_the_provider_model(test_pub):
    from reconciler.models.provider import CredentialField, Provider

    assert set(typing.get_args(CredentialField)) == set(sealing.CREDENTIAL_FIELDS)
    from reconciler.commands.seal import FIELDS

    assert FIELDS == sealing.CREDENTIAL_FIELDS
    spec = {"type": "vks", "endpoint": "https://vks.example:6443", "auth": {"method": "api-token"},
            "credentials": {"token": sealing.seal(test_pub, "vks", "token", b"abc")},
            "nodePools": [{"name": "a"}]}
    Provider.model_validate({"apiVersion": "imagefactory.dev/v1alpha1", "kind": "Provider",
                             "metadata": {"name": "vks"}, "spec": spec})


def test_sealing_error_is_terminal():
    assert issubclass(SealingError, TerminalError)


# --- tampering and binding ---------------------------------------------------------------

PART_NAMES = ["key id", "wrapped key (ephemeral public key)", "nonce", "body", "tag"]


@pytest.mark.parametrize("index", range(5), ids=PART_NAMES)
def test_tampering_with_any_part_is_rejected(ring, test_pub, index: int):
    plaintext = "fake-token-tamper-check"
    value = sealing.seal(test_pub, "prod", "token", plaintext)
    parts = _parts(value)
    if index == 0:
        parts[0] = ("1" if parts[0][0] != "1" else "2") + parts[0][1:]
    else:
        parts[index] = _flip(parts[index])
    with pytest.raises(SealingError) as err:
        ring.open("prod", "token", _join(parts))
    message = str(err.value)
    _no_secret_in(message, value, plaintext)
    assert message.startswith("credentials.token of provider prod: ")
    if index == 0:
        assert f"sealed for key {parts[0]} which is not loaded (loaded: {TEST_KID})" in message
    else:
        assert message.endswith("integrity check failed (tampered, or sealed for another provider or field)")


def test_relabelled_key_id_is_rejected_even_when_that_key_is_loaded(test_key, test_pub):
    """The key id is authenticated too: naming another loaded key does not just pick a key."""
    other = sealing.generate_private_key()
    ring = Keyring([test_key, other], redactor=Redactor())
    parts = _parts(sealing.seal(test_pub, "prod", "token", b"secret-value"))
    parts[0] = sealing.key_id(other)
    with pytest.raises(SealingError, match="integrity check failed"):
        ring.open("prod", "token", _join(parts))


@pytest.mark.parametrize("mangle", [
    lambda v: v + ":extra",
    lambda v: v.rsplit(":", 1)[0],
    lambda v: v.replace("sealed:v1:", "sealed:v2:"),
    lambda v: _join([_parts(v)[0], _parts(v)[1][:-2], *_parts(v)[2:]]),  # short ephemeral key
    lambda v: _join([*_parts(v)[:3], "", _parts(v)[4]]),  # empty body
    lambda v: _join([*_parts(v)[:4], _parts(v)[4] + "AAAA"]),  # long tag
    lambda v: _join([*_parts(v)[:2], "!!!!", *_parts(v)[3:]]),  # not base64url
    lambda v: "sealed:v1:placeholder",
], ids=["extra part", "missing part", "other version", "short key", "empty body", "long tag", "bad base64", "placeholder"])
def test_malformed_values_are_rejected_without_echo(ring, test_pub, mangle):
    value = sealing.seal(test_pub, "prod", "token", b"fake-token-malformed")
    with pytest.raises(SealingError) as err:
        ring.open("prod", "token", mangle(value))
    assert "not a valid sealed value" in str(err.value)
    _no_secret_in(str(err.value), value, "fake-token-malformed")


@pytest.mark.parametrize("provider,field", [("staging", "token"), ("prod", "clientSecret"), ("staging", "kubeconfig"),
                                            ("pro", "token"), ("prod-", "token")])
def test_moving_to_another_provider_or_field_is_rejected(ring, test_pub, provider: str, field: str):
    value = sealing.seal(test_pub, "prod", "token", b"fake-token-bound")
    with pytest.raises(SealingError) as err:
        ring.open(provider, field, value)
    assert str(err.value) == (f"credentials.{field} of provider {provider}: integrity check failed "
                              "(tampered, or sealed for another provider or field)")


def test_unknown_field_and_missing_provider_are_refused(ring, test_pub):
    with pytest.raises(SealingError, match="one of kubeconfig, token"):
        sealing.seal(test_pub, "prod", "password", b"x")
    with pytest.raises(SealingError, match="provider name"):
        sealing.seal(test_pub, "", "token", b"x")
    with pytest.raises(SealingError, match="empty"):
        sealing.seal(test_pub, "prod", "token", b"")


def test_open_all_and_key_not_loaded(test_pub):
    creds = {"token": sealing.seal(test_pub, "p", "token", b"t1"), "caCert": sealing.seal(test_pub, "p", "caCert", b"ca")}
    assert Keyring.from_files([TEST_KEY], redactor=Redactor()).open_all("p", creds) == {"token": b"t1", "caCert": b"ca"}
    with pytest.raises(SealingError) as err:
        Keyring(redactor=Redactor()).open("p", "token", creds["token"])
    assert str(err.value) == (f"credentials.token of provider p: sealed for key {TEST_KID} which is not loaded "
                              "(loaded: none; set IMAGE_FACTORY_SEALING_KEYS or IMAGE_FACTORY_SEALING_KEY_DIR)")


# --- keys: loading, rotation -------------------------------------------------------------

def test_keyring_from_env(tmp_path: Path, test_pub):
    other = sealing.generate_private_key()
    folder = tmp_path / "keys"
    folder.mkdir()
    sealing.write_private_file(folder / "new.key", sealing.private_key_pem(other))
    (folder / "README").write_text("not a key")
    ring = Keyring.from_env({"IMAGE_FACTORY_SEALING_KEYS": f"{TEST_KEY}:{TEST_KEY}",
                             "IMAGE_FACTORY_SEALING_KEY_DIR": str(folder)}, redactor=Redactor())
    assert set(ring.key_ids) == {TEST_KID, sealing.key_id(other)} and len(ring) == 2
    assert "PRIVATE" not in repr(ring)
    assert len(Keyring.from_env({})) == 0
    with pytest.raises(SealingError, match=r"sealing key .*missing.key: no such file"):
        Keyring.from_env({"IMAGE_FACTORY_SEALING_KEYS": str(tmp_path / "missing.key")})
    with pytest.raises(SealingError, match="not a PEM private key"):
        Keyring.from_env({"IMAGE_FACTORY_SEALING_KEYS": str(TEST_PUB)})
    with pytest.raises(SealingError, match="not a directory"):
        Keyring.from_env({"IMAGE_FACTORY_SEALING_KEY_DIR": str(tmp_path / "nope")})
    with pytest.raises(SealingError, match="this is a private key"):
        sealing.load_public_key(TEST_KEY)


def test_rotation_old_ciphertext_opens_while_its_key_is_loaded(test_key, test_pub):
    new = sealing.generate_private_key()
    old_value = sealing.seal(test_pub, "prod", "token", b"fake-rotating-token")
    new_value = sealing.seal(new.public_key(), "prod", "token", b"fake-rotating-token")
    both = Keyring([new, test_key], redactor=Redactor())
    assert both.open("prod", "token", old_value) == both.open("prod", "token", new_value) == b"fake-rotating-token"
    with pytest.raises(SealingError, match="not loaded"):
        Keyring([new], redactor=Redactor()).open("prod", "token", old_value)


def _rotated_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of examples-repo whose factory.pub is a new key; returns (repo, new private key)."""
    repo = copy_examples(tmp_path / "repo")
    keys = tmp_path / "new-keys"
    assert cli("keygen", "--out", str(keys)).returncode == 0
    shutil.copy(keys / "factory.pub", repo / "factory.pub")
    return repo, keys / "factory.key"


def test_reseal_switches_every_credential_to_the_newest_key(tmp_path: Path):
    repo, new_key = _rotated_repo(tmp_path)
    new_kid = sealing.key_id(sealing.load_private_key(new_key))
    before = {p.name: p.read_text() for p in (repo / "providers").glob("*.yaml")}
    env = {"IMAGE_FACTORY_SEALING_KEYS": str(TEST_KEY)}

    dry = cli("reseal", "--repo", str(repo), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would reseal 6 credentials in 4 files" in dry.stdout and "dry run" in dry.stdout
    assert {p.name: p.read_text() for p in (repo / "providers").glob("*.yaml")} == before

    proc = cli("reseal", "--repo", str(repo), "--output", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["keyId"] == new_kid and len(report["files"]) == 4
    assert {c["status"] for c in report["changes"]} == {"resealed"}

    ring = Keyring.from_files([new_key], redactor=Redactor())  # the old key is no longer needed
    for path in (repo / "providers").glob("*.yaml"):
        old, new = before[path.name].splitlines(), path.read_text().splitlines()
        assert len(old) == len(new)
        doc = yaml.safe_load(path.read_text())
        for field, value in (doc["spec"].get("credentials") or {}).items():
            assert sealing.sealed_key_id(value) == new_kid
            ring.open(doc["metadata"]["name"], field, value)
        # byte for byte the same file, except the sealed values themselves
        for a, b in zip(old, new):
            if a != b:
                assert re.sub(r"sealed:v1:\S+", "S", a) == re.sub(r"sealed:v1:\S+", "S", b)
    again = cli("reseal", "--repo", str(repo), "--key", str(new_key))
    assert again.returncode == 0 and "resealed 0 credentials" in again.stdout and "6 already sealed" in again.stdout


def test_reseal_keeps_comments_and_quoting_and_reports_what_it_cannot_open(tmp_path: Path, test_pub):
    repo, new_key = _rotated_repo(tmp_path)
    path = repo / "providers" / "vks-onprem.yaml"
    text = path.read_text()
    token = re.search(r"token: (sealed:v1:\S+)", text).group(1)
    text = text.replace(f"token: {token}", f'token: "{token}"  # sealed for vks-onprem\n    caCert: sealed:v1:placeholder')
    path.write_text(text)
    rancher = repo / "providers" / "rancher-edge.yaml"
    rancher_text = rancher.read_text()
    rancher_token = re.search(r"token: (sealed:v1:\S+)", rancher_text).group(1)
    moved = sealing.seal(test_pub, "openshift-corp", "token", b"fake-moved")  # bound to another provider
    rancher.write_text(rancher_text.replace(rancher_token, moved))

    proc = cli("reseal", "--repo", str(repo), env={"IMAGE_FACTORY_SEALING_KEYS": str(TEST_KEY)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("providers/vks-onprem.yaml: error: credentials.caCert of provider vks-onprem: not a valid sealed value"
            in proc.stdout)
    assert ("providers/rancher-edge.yaml: error: credentials.token of provider rancher-edge: integrity check failed"
            in proc.stdout)
    assert "resealed 5 credentials" in proc.stdout and "2 could not be opened" in proc.stdout
    assert moved not in proc.stdout + proc.stderr and "fake-moved" not in proc.stdout + proc.stderr
    new_text = path.read_text()
    assert "  # sealed for vks-onprem\n    caCert: sealed:v1:placeholder\n" in new_text
    new_token = re.search(r'token: "(sealed:v1:[^"]+)"  # sealed for vks-onprem', new_text).group(1)
    assert new_token != token and new_text.replace(new_token, token) == text
    assert rancher.read_text().count(moved) == 1  # left as it was


def test_reseal_without_any_private_key_cannot_run(tmp_path: Path):
    repo, _ = _rotated_repo(tmp_path)
    env = {"IMAGE_FACTORY_SEALING_KEYS": "", "IMAGE_FACTORY_SEALING_KEY_DIR": ""}
    proc = cli("reseal", "--repo", str(repo), env=env)
    assert proc.returncode == 2 and "no private key is loaded" in proc.stderr


def test_reseal_splice_falls_back_for_block_scalars():
    from reconciler.commands.reseal import _splice

    text = "a: x\nb: 'old'\nc: >-\n  old\n"
    assert _splice(text, [(1, 3, "old", "new")]) == "a: x\nb: 'new'\nc: >-\n  old\n"
    assert _splice(text, [(2, 3, "old", "new")]) is None


# --- keygen and key file permissions -----------------------------------------------------

def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keygen_private_key_is_0600_whatever_the_umask(tmp_path: Path):
    old = os.umask(0)
    try:
        proc = cli("keygen", "--out", str(tmp_path / "k"), "--k8s-secret", "--namespace", "builds", "--output", "json")
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    key, pub, secret = Path(info["privateKey"]), Path(info["publicKey"]), Path(info["secretManifest"])
    assert _mode(key) == 0o600 and _mode(secret) == 0o600
    assert _mode(pub) & 0o044  # the public key is meant to be read
    assert info["keyId"] == sealing.key_id(sealing.load_public_key(pub)) == sealing.key_id(sealing.load_private_key(key))
    assert "PRIVATE" not in proc.stdout
    manifest = yaml.safe_load(secret.read_text())
    assert manifest["kind"] == "Secret" and manifest["metadata"]["namespace"] == "builds"
    assert base64.b64decode(manifest["data"][f"{info['keyId']}.key"]) == key.read_bytes()


def test_keygen_refuses_to_overwrite_and_force_keeps_0600(tmp_path: Path):
    out = tmp_path / "k"
    assert cli("keygen", "--out", str(out)).returncode == 0
    first = (out / "factory.key").read_bytes()
    proc = cli("keygen", "--out", str(out))
    assert proc.returncode == 2 and "already exists" in proc.stderr and "--force" in proc.stderr
    assert (out / "factory.key").read_bytes() == first
    proc = cli("keygen", "--out", str(out), "--force")
    assert proc.returncode == 0 and (out / "factory.key").read_bytes() != first and _mode(out / "factory.key") == 0o600
    assert sorted(p.name for p in out.iterdir()) == ["factory.key", "factory.pub"]  # no temp files left


def test_keygen_secret_can_carry_the_old_key_for_a_rotation(tmp_path: Path):
    proc = cli("keygen", "--out", str(tmp_path), "--k8s-secret", "--include-key", str(TEST_KEY), "-o", "json")
    info = json.loads(proc.stdout)
    data = yaml.safe_load(Path(info["secretManifest"]).read_text())["data"]
    assert set(data) == {f"{info['keyId']}.key", f"{TEST_KID}.key"}
    assert base64.b64decode(data[f"{TEST_KID}.key"]) == TEST_KEY.read_bytes()


def test_write_private_file_never_follows_or_clobbers(tmp_path: Path):
    target = tmp_path / "elsewhere"
    (tmp_path / "link.key").symlink_to(target)
    with pytest.raises(SealingError, match="already exists"):
        sealing.write_private_file(tmp_path / "link.key", b"k")
    assert not target.exists()


# --- seal ---------------------------------------------------------------------------------

def test_seal_reads_stdin(test_key):
    proc = cli("seal", "--provider", "vks-onprem", "--repo", str(EXAMPLES), input="fake-stdin-token\n")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "credentials:" and lines[1].startswith("  token: sealed:v1:") and len(lines) == 2
    value = lines[1].split(": ", 1)[1]
    assert "fake-stdin-token" not in proc.stdout + proc.stderr
    # a trailing newline (what echo adds) is not part of a token
    assert Keyring([test_key], redactor=Redactor()).open("vks-onprem", "token", value) == b"fake-stdin-token"
    assert yaml.safe_load(proc.stdout) == {"credentials": {"token": value}}


def test_seal_files_byte_for_byte_raw_and_json(tmp_path: Path, test_key):
    src = tmp_path / "kubeconfig"
    src.write_text(KUBECONFIG)
    proc = cli("seal", "--provider", "lab", "--field", "kubeconfig", "--in", str(src), "--public-key", str(TEST_PUB), "--raw")
    assert proc.returncode == 0, proc.stderr
    ring = Keyring([test_key], redactor=Redactor())
    assert ring.open("lab", "kubeconfig", proc.stdout.strip()) == KUBECONFIG.encode()
    proc = cli("seal", "--provider", "lab", "--field", "caCert", "--public-key", str(TEST_PUB), "-o", "json", input="ca\n")
    out = json.loads(proc.stdout)
    assert out["keyId"] == TEST_KID and out["field"] == "caCert"
    assert ring.open("lab", "caCert", out["value"]) == b"ca\n"


@pytest.mark.parametrize("args,stdin,error", [
    (["--provider", "p"], "", "nothing to seal"),
    (["--provider", "p"], "\n", "nothing to seal"),
    (["--provider", "Bad_Name"], "x", "--provider must be"),
    (["--provider", "p", "--public-key", str(TEST_KEY)], "x", "this is a private key"),
    (["--provider", "p", "--public-key", "/nonexistent.pub"], "x", "no such file"),
])
def test_seal_errors(args, stdin, error):
    full = args if "--public-key" in args else [*args, "--public-key", str(TEST_PUB)]
    proc = cli("seal", *full, input=stdin)
    assert proc.returncode == 2 and error in proc.stderr, proc.stderr


def test_seal_refuses_an_already_sealed_value_and_warns_about_unknown_providers(test_pub):
    proc = cli("seal", "--provider", "p", "--public-key", str(TEST_PUB), input=sealing.seal(test_pub, "p", "token", b"x"))
    assert proc.returncode == 2 and "already a sealed value" in proc.stderr
    proc = cli("seal", "--provider", "no-such-provider", "--repo", str(EXAMPLES), input="x")
    assert proc.returncode == 0 and "warning: no provider named no-such-provider" in proc.stderr


def test_secret_never_on_the_command_line():
    proc = cli("seal", "--help")
    assert "--secret" not in proc.stdout and "--value" not in proc.stdout and "stdin" in proc.stdout


# --- redaction ------------------------------------------------------------------------------

def test_redactor_masks_opened_plaintexts(test_key, test_pub):
    redactor = Redactor()
    ring = Keyring([test_key], redactor=redactor)
    assert redactor.redact("nothing registered") == "nothing registered"
    ring.open("lab", "kubeconfig", sealing.seal(test_pub, "lab", "kubeconfig", KUBECONFIG))
    token = re.search(r"token: (\S+)", KUBECONFIG).group(1)
    ca = re.search(r"certificate-authority-data: (\S+)", KUBECONFIG).group(1)
    out = redactor.redact(f"401 with bearer {token}; ca={ca}; whole={KUBECONFIG}; b64={base64.b64encode(KUBECONFIG.encode()).decode()}")
    assert token not in out and ca not in out and "apiVersion" not in out and "***" in out
    assert redactor.redact("connecting to https://k8s.lab.example:6443 as admin") == \
        "connecting to https://k8s.lab.example:6443 as admin"
    # one line of the PEM inside the base64 certificate data
    pem_line = base64.b64decode(ca).decode().splitlines()[1]
    assert pem_line not in redactor.redact(f"bad cert line {pem_line}")
    redactor.register("ab")  # too short to mask without destroying every log line
    assert redactor.redact("tab cab") == "tab cab"


def test_log_filter_redacts_messages_args_and_tracebacks():
    redactor = Redactor()
    redactor.register("fake-secret-for-logs")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(redactor.logging_filter())
    log = logging.getLogger("test_sealing.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("token %s rejected", "fake-secret-for-logs")
        try:
            raise ValueError("boom fake-secret-for-logs")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    assert records[0] == "token *** rejected"
    assert "fake-secret-for-logs" not in "\n".join(records) and "ValueError: boom ***" in records[1]


# --- examples-repo carries real sealed values made with the throwaway key ---------------

def test_examples_repo_credentials_are_sealed_with_the_throwaway_key(test_key):
    assert (EXAMPLES / "factory.pub").read_bytes() == TEST_PUB.read_bytes()
    ring = Keyring([test_key], redactor=Redactor())
    seen = 0
    for path in sorted((EXAMPLES / "providers").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for field, value in (doc["spec"].get("credentials") or {}).items():
            plaintext = ring.open(doc["metadata"]["name"], field, value)
            assert plaintext.startswith((b"fake-token-for-examples-", b"-----BEGIN ")), path
            seen += 1
    assert seen >= 4
    assert "placeholder" not in "".join(p.read_text() for p in (EXAMPLES / "providers").glob("*.yaml"))


def test_fixture_key_is_labelled_throwaway():
    text = (FIXTURES / "README.md").read_text()
    assert "throwaway" in text.lower() and "never" in text.lower() and TEST_KID in text


# --- the marker sweep: a known secret, every command, every output, every file -------------

# One line per command: (argv, stdin, exit codes that count as "ran"). {tmp} is a scratch
# folder. Commands run from a Git copy of examples-repo whose providers/vks-onprem.yaml carries
# MARKER as its sealed token, with both private keys loaded, so anything that opens credentials
# does open the marker. Add new commands here (diff, review, reconcile --once, explain...).
SWEEP: list[tuple[list[str], str | None, tuple[int, ...]]] = [
    (["validate", "."], None, (0,)),
    (["validate", ".", "--output", "json"], None, (0,)),
    (["validate", ".", "--rev", "HEAD"], None, (0,)),
    (["seal", "--provider", "vks-onprem"], MARKER, (0,)),
    (["seal", "--provider", "vks-onprem", "--field", "caCert", "--output", "json"], MARKER + "\n", (0,)),
    (["seal", "--provider", "vks-onprem", "--raw", "--in", "/dev/stdin"], MARKER, (0,)),
    (["reseal", "--dry-run"], None, (0,)),
    (["reseal", "--dry-run", "--output", "json"], None, (0,)),
    (["keygen", "--out", "{tmp}/keygen", "--k8s-secret"], None, (0,)),
    (["reseal"], None, (0,)),  # really rewrites the files to the new key
    (["reseal", "--output", "json"], None, (0,)),
    (["validate", "."], None, (0,)),
    (["render", "--repo", "."], None, (0,)),
    (["render", "--repo", ".", "--output", "json"], None, (0,)),
    (["explain", "builds/web/frontend.yaml", "--repo", "."], None, (0,)),
    (["diff", "--repo", ".", "--against", "HEAD"], None, (0, 1)),
    (["review", "--repo", ".", "--base", "HEAD", "--head", "HEAD", "--format", "markdown"], None, (0,)),
    (["review", "--repo", ".", "--base", "HEAD", "--head", "HEAD", "--format", "json"], None, (0,)),
    # Live `diff` and `reconcile` are swept against the test control plane in their own tests:
    # the example providers' endpoints are fictional and must never be contacted.
]


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    forms = {MARKER.encode(), base64.b64encode(MARKER.encode()), base64.urlsafe_b64encode(MARKER.encode()).rstrip(b"="),
             MARKER.encode().hex().encode(), MARKER.encode("utf-16-le")}
    return [f.decode("latin-1") for f in forms if f in data]


def test_marker_sweep(tmp_path: Path, test_pub):
    repo, new_key = _rotated_repo(tmp_path)
    path = repo / "providers" / "vks-onprem.yaml"
    text = path.read_text()
    old = re.search(r"token: (sealed:v1:\S+)", text).group(1)
    path.write_text(text.replace(old, sealing.seal(test_pub, "vks-onprem", "token", MARKER)))
    init_repo(repo)
    env = {"IMAGE_FACTORY_SEALING_KEYS": f"{TEST_KEY}:{new_key}", "IMAGE_FACTORY_DEBUG": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for argv, stdin, codes in SWEEP:
        args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
        proc = cli(*args, cwd=repo, input=stdin, env=env)
        assert proc.returncode in codes, f"{args}: exit {proc.returncode}: {proc.stderr}"
        assert not _leaks(proc.stdout) and not _leaks(proc.stderr), f"{args} printed the secret"
    # every file left behind: the repository (working tree and .git), the keys, everything
    for file in tmp_path.rglob("*"):
        if file.is_file() and not file.is_symlink():
            assert not _leaks(file.read_bytes()), f"{file} contains the secret"
    # and the sweep did exercise the marker: it is still there, now sealed for the new key only
    value = yaml.safe_load(path.read_text())["spec"]["credentials"]["token"]
    assert sealing.sealed_key_id(value) == sealing.key_id(sealing.load_private_key(new_key))
    assert Keyring.from_files([new_key], redactor=Redactor()).open("vks-onprem", "token", value) == MARKER.encode()


def test_private_tempdir_is_private_and_always_removed():
    with pytest.raises(RuntimeError):
        with sealing.private_tempdir() as folder:
            assert _mode(Path(folder)) == 0o700
            sealing.write_private_file(Path(folder) / "kubeconfig", b"x")
            raise RuntimeError("connection failed")
    assert not Path(folder).exists()


def test_structured_logs_redact_opened_credentials(test_key, test_pub):
    structured = pytest.importorskip("reconciler.logging")
    assert sealing.redact in structured._redactors
    Keyring([test_key]).open("p", "token", sealing.seal(test_pub, "p", "token", b"fake-structured-log-token"))
    assert sealing.redact("x fake-structured-log-token y") == "x *** y"


@pytest.mark.parametrize("command", ["keygen", "seal", "reseal"])
def test_help_documents_exit_codes(command: str):
    proc = cli(command, "--help")
    assert proc.returncode == 0 and "exit codes:" in proc.stdout

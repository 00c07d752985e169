"""Sealed provider credentials: encrypt to the reconciler's public key, open only in its process.

Admins commit credentials to a Git repository that everyone can read, so they are encrypted
to a key pair whose private half only the reconciler holds (``image-factory keygen``).
``image-factory seal`` encrypts with the public key; the reconciler opens values in memory
when it connects to a cluster (``Keyring.open``).

Format
------
One line, ``sealed:v1:`` followed by five ``:``-separated parts, binary parts in base64url
without padding::

    sealed:v1:<key id>:<ephemeral public key>:<nonce>:<body>:<tag>

- *key id*: 16 lowercase hex digits, the first 8 bytes of SHA-256 over the DER
  SubjectPublicKeyInfo of the recipient's public key (``key_id``). It says which private key
  opens the value, so several keys can be loaded during a rotation.
- *ephemeral public key*: 32 bytes, a fresh X25519 key per value (the "wrapped key": the
  content key is derived from it, it is never stored).
- *nonce*: 12 random bytes for AES-256-GCM.
- *body*, *tag*: the AES-256-GCM ciphertext and its 16-byte authentication tag.

Construction (``v1``): ECIES in the style of age and HPKE (RFC 9180) base mode::

    shared  = X25519(ephemeral_private, recipient_public)
    key     = HKDF-SHA256(ikm=shared, salt=ephemeral_public || recipient_public,
                          info="imagefactory.dev/sealed/v1 key", length=32)
    body|tag = AES-256-GCM(key, nonce, plaintext, aad)
    aad     = "imagefactory.dev/sealed/v1" || lp(key id) || lp(provider) || lp(field)

where ``lp`` is a 2-byte big-endian length followed by the UTF-8 bytes (unambiguous, so no
two (provider, field) pairs share an encoding). Changing any part, or moving a value to
another provider's ``metadata.name`` or another credential field, fails the tag check.

Why X25519 + HKDF + AES-GCM and not RSA-OAEP + AES-GCM (Bitnami Sealed Secrets)
-------------------------------------------------------------------------------
Both are sound hybrid schemes; this one fits a value that must sit on one line of YAML:

- Small: a sealed 40-byte token is about 170 characters. RSA-3072-OAEP alone adds 384 bytes
  (512 characters) of wrapped key to every value; RSA-4096 adds 683 characters.
- No parameters to get wrong: no padding mode, hash or MGF choice, no padding-oracle
  class of bugs; every 32-byte string is a valid public key; key generation is instant and
  X25519 is constant-time in OpenSSL.
- Well trodden: it is age's X25519 recipient and HPKE's DHKEM(X25519, HKDF-SHA256) with
  AES-256-GCM. HKDF's salt binds the derived key to both public keys (as HPKE's key
  schedule does); the AAD binds the ciphertext to the key id, provider and field (what
  Sealed Secrets does with name and namespace).
- Every value has its own ephemeral key, so its AES key is used exactly once; the random
  nonce is therefore never reused under a key (it is explicit anyway, to be safe and
  simple to check).

Neither RSA nor X25519 resists a future quantum computer. Ciphertexts in Git live long, so
when that matters a ``sealed:v2:`` can use a hybrid ML-KEM-768 + X25519 KEM
(``cryptography`` >= 46 ships one); ``image-factory reseal`` migrates a repository.

Keys and where they come from
-----------------------------
``factory.key`` is a PEM PKCS#8 X25519 private key (mode 0600); ``factory.pub`` the PEM
SubjectPublicKeyInfo, committed and named by ``factory.yaml`` ``spec.sealing.publicKey``.
At runtime the reconciler loads private keys (``Keyring.from_env``) from:

- ``IMAGE_FACTORY_SEALING_KEYS``: file paths separated by ``:`` (``os.pathsep``), and
- ``IMAGE_FACTORY_SEALING_KEY_DIR``: a directory whose ``*.key`` files are all loaded (the
  Secret made by ``image-factory keygen --k8s-secret`` mounted as a volume; put the old and
  the new key in it during a rotation).

Both may be set; keys are de-duplicated by key id. A listed file that is missing or not an
X25519 private key is an error that names the path (never its content).

Redaction
---------
Every plaintext that ``Keyring.open`` returns is registered with a ``Redactor`` (by default
the process-wide ``REDACTOR``), and ``redact(text)`` replaces any registered secret, and the
long tokens inside multi-line ones (kubeconfig tokens, base64 certificate data, PEM lines),
with ``***``. Logs, status, diffs and error messages pass through it: ``reconciler.logging``
runs ``redact`` over every record (hooked in when this module is imported), and
``RedactingFilter`` / ``install_log_redaction`` do the same for plain ``logging`` handlers.

API (what other modules call)
-----------------------------
``seal(public_key, provider, field, plaintext) -> str``; ``Keyring.from_env()``,
``Keyring.from_files(paths)``, ``Keyring([keys])``; ``keyring.open(provider, field, sealed) ->
bytes``, ``keyring.open_all(provider, credentials) -> dict[str, bytes]``, ``keyring.key_ids``;
``sealed_key_id(value)``, ``is_sealed(value)``, ``key_id(key)``; ``load_public_key(path_or_pem)``,
``load_private_key(path)``, ``generate_private_key()``; ``redact(text)``,
``register_secret(value)``, ``REDACTOR``; ``write_private_file(path, data, force=False)``
(0600 from the first byte) and ``private_tempdir()`` (a 0700 directory removed on exit, for an
exec plugin's kubeconfig). Every failure is a ``SealingError`` (terminal) whose message names
the provider, the field and at most the key id.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import glob
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import SealingError

__all__ = [
    "CREDENTIAL_FIELDS", "ENV_KEYS", "ENV_KEY_DIR", "SEALED_PREFIX", "Keyring", "Redactor", "REDACTOR",
    "SealedParts", "generate_private_key", "is_sealed", "key_id", "load_private_key", "load_public_key",
    "parse", "private_key_pem", "private_tempdir", "write_private_file", "key_paths_from_env",
    "install_log_redaction", "RedactingFilter", "public_key_pem", "redact", "register_secret", "seal", "sealed_key_id",
]

SEALED_PREFIX = "sealed:v1:"
ENV_KEYS = "IMAGE_FACTORY_SEALING_KEYS"
ENV_KEY_DIR = "IMAGE_FACTORY_SEALING_KEY_DIR"
# The fields of Provider.spec.credentials (reconciler.models.provider.CredentialField).
CREDENTIAL_FIELDS: tuple[str, ...] = ("kubeconfig", "token", "caCert", "clientCert", "clientKey", "clientSecret")

_CONTEXT = b"imagefactory.dev/sealed/v1"
_HKDF_INFO = b"imagefactory.dev/sealed/v1 key"
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_B64 = re.compile(r"^[A-Za-z0-9_-]*$")
_NONCE_BYTES, _TAG_BYTES, _EPK_BYTES = 12, 16, 32
FORMAT_HINT = "sealed:v1:<key id>:<ephemeral key>:<nonce>:<body>:<tag>"
MAX_PLAINTEXT_BYTES = 1 << 20  # a kubeconfig is a few KiB; provider files are at most 1 MiB


# --------------------------------------------------------------------------- keys

def generate_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def private_key_pem(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(key: X25519PublicKey | X25519PrivateKey) -> bytes:
    if isinstance(key, X25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: X25519PublicKey | X25519PrivateKey) -> str:
    """First 16 hex digits of SHA-256 over the public key's DER SubjectPublicKeyInfo."""
    if isinstance(key, X25519PrivateKey):
        key = key.public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def load_public_key(source: str | os.PathLike | bytes) -> X25519PublicKey:
    """A public key from PEM bytes or from a PEM file's path."""
    where = "public key"
    if not isinstance(source, bytes):
        where = os.fspath(source)
        try:
            with open(source, "rb") as fh:
                source = fh.read(64 * 1024)
        except FileNotFoundError:
            raise SealingError(f"{where}: no such file (make one with `image-factory keygen`)") from None
        except OSError as exc:
            raise SealingError(f"{where}: cannot read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(source)
    except (ValueError, TypeError, binascii.Error):
        if b"PRIVATE KEY" in source:
            raise SealingError(f"{where}: this is a private key; give the public key (factory.pub)") from None
        raise SealingError(f"{where}: not a PEM public key") from None
    except Exception:  # noqa: BLE001 - unsupported algorithm and similar: same answer
        raise SealingError(f"{where}: not a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise SealingError(f"{where}: a {type(key).__name__.replace('PublicKey', '').lstrip('_')} key; "
                           "sealing keys are X25519 (made by `image-factory keygen`)")
    return key


def load_private_key(path: str | os.PathLike) -> X25519PrivateKey:
    """A private key from a PEM PKCS#8 file. Errors name the path, never the content."""
    where = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(64 * 1024)
    except FileNotFoundError:
        raise SealingError(f"sealing key {where}: no such file") from None
    except OSError as exc:
        raise SealingError(f"sealing key {where}: cannot read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SealingError(f"sealing key {where}: encrypted with a passphrase; give an unencrypted PKCS#8 key") from None
    except Exception:  # noqa: BLE001 - ValueError, UnsupportedAlgorithm...: never echo the content
        raise SealingError(f"sealing key {where}: not a PEM private key") from None
    finally:
        del data
    if not isinstance(key, X25519PrivateKey):
        raise SealingError(f"sealing key {where}: not an X25519 key; sealing keys are made by `image-factory keygen`")
    return key


# --------------------------------------------------------------------------- format

def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if not _B64.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SealedParts:
    key_id: str
    ephemeral: bytes
    nonce: bytes
    body: bytes
    tag: bytes

    def encode(self) -> str:
        return SEALED_PREFIX + ":".join(
            [self.key_id, _b64e(self.ephemeral), _b64e(self.nonce), _b64e(self.body), _b64e(self.tag)])


def parse(sealed: str) -> SealedParts:
    """Split a sealed value into its parts; ValueError (with no content in it) when malformed."""
    if not isinstance(sealed, str) or not sealed.startswith(SEALED_PREFIX):
        raise ValueError("does not start with sealed:v1:")
    parts = sealed[len(SEALED_PREFIX):].split(":")
    if len(parts) != 5:
        raise ValueError(f"has {len(parts)} part{'s' * (len(parts) != 1)} after sealed:v1: instead of 5")
    kid, epk, nonce, body, tag = parts
    if not _KEY_ID.match(kid):
        raise ValueError("key id is not 16 hex digits")
    try:
        out = SealedParts(kid, _b64d(epk), _b64d(nonce), _b64d(body), _b64d(tag))
    except (ValueError, binascii.Error):
        raise ValueError("a part is not base64url") from None
    if len(out.ephemeral) != _EPK_BYTES or len(out.nonce) != _NONCE_BYTES or len(out.tag) != _TAG_BYTES or not out.body:
        raise ValueError("a part has the wrong length")
    return out


def is_sealed(value: object) -> bool:
    """Whether ``value`` is a well-formed sealed value (says nothing about who can open it)."""
    try:
        parse(value)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def sealed_key_id(sealed: str) -> str | None:
    """The key id a sealed value names, or None when it is malformed."""
    try:
        return parse(sealed).key_id
    except ValueError:
        return None


def _lp(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise SealingError("name too long")
    return len(data).to_bytes(2, "big") + data


def _aad(kid: str, provider: str, field: str) -> bytes:
    return _CONTEXT + _lp(kid) + _lp(provider) + _lp(field)


def _derive(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_HKDF_INFO).derive(shared)


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _where(provider: str, field: str) -> str:
    return f"credentials.{field} of provider {provider}"


def _check_names(provider: str, field: str) -> None:
    if field not in CREDENTIAL_FIELDS:
        raise SealingError(f"credential field must be one of {', '.join(CREDENTIAL_FIELDS)}")
    if not isinstance(provider, str) or not provider or len(provider) > 253 or not provider.isprintable():
        raise SealingError("a provider name (its metadata.name) is required to seal or open a credential")


# --------------------------------------------------------------------------- seal / open

def seal(public_key: X25519PublicKey | bytes, provider: str, field: str, plaintext: bytes | str) -> str:
    """Encrypt ``plaintext`` for the holder of ``public_key``, bound to ``provider`` and ``field``."""
    if isinstance(public_key, bytes):
        public_key = load_public_key(public_key)
    _check_names(provider, field)
    if isinstance(plaintext, str):
        plaintext = plaintext.encode("utf-8")
    if not plaintext:
        raise SealingError(f"{_where(provider, field)}: nothing to seal (the input is empty)")
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise SealingError(f"{_where(provider, field)}: the input is over {MAX_PLAINTEXT_BYTES // 1024} KiB")
    kid = key_id(public_key)
    ephemeral = X25519PrivateKey.generate()
    epk = _raw(ephemeral.public_key())
    key = _derive(ephemeral.exchange(public_key), epk, _raw(public_key))
    nonce = os.urandom(_NONCE_BYTES)
    out = AESGCM(key).encrypt(nonce, plaintext, _aad(kid, provider, field))
    return SealedParts(kid, epk, nonce, out[:-_TAG_BYTES], out[-_TAG_BYTES:]).encode()


class Keyring:
    """The private keys this process holds, by key id. Opens sealed values in memory.

    Thread-safe for ``open`` (no shared mutable state besides the redactor, which locks).
    """

    def __init__(self, keys: Iterable[X25519PrivateKey] = (), redactor: "Redactor | None" = None) -> None:
        self._keys: dict[str, X25519PrivateKey] = {}
        self._sources: dict[str, str] = {}
        self.redactor = REDACTOR if redactor is None else redactor
        for key in keys:
            self.add(key)

    # loading
    def add(self, key: X25519PrivateKey, source: str = "") -> str:
        kid = key_id(key)
        self._keys.setdefault(kid, key)
        self._sources.setdefault(kid, source)
        return kid

    def add_file(self, path: str | os.PathLike) -> str:
        return self.add(load_private_key(path), os.fspath(path))

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike], redactor: "Redactor | None" = None) -> "Keyring":
        ring = cls(redactor=redactor)
        for path in paths:
            ring.add_file(path)
        return ring

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, redactor: "Redactor | None" = None) -> "Keyring":
        """Keys named by IMAGE_FACTORY_SEALING_KEYS (paths, ':'-separated) and the *.key files of
        IMAGE_FACTORY_SEALING_KEY_DIR. Neither set: an empty keyring (nothing can be opened)."""
        return cls.from_files(key_paths_from_env(environ), redactor=redactor)

    # queries
    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def source(self, kid: str) -> str:
        return self._sources.get(kid, "")

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:  # never the keys themselves
        return f"Keyring(key_ids={list(self._keys)})"

    # opening
    def open(self, provider: str, field: str, sealed: str) -> bytes:
        """The plaintext of ``sealed`` as stored in ``provider``'s ``credentials.<field>``.

        Raises SealingError with a reason that names the provider, the field and at most the key
        id: never the value, its parts or the plaintext. The plaintext is registered with the
        redactor before it is returned.
        """
        _check_names(provider, field)
        where = _where(provider, field)
        try:
            parts = parse(sealed)
        except ValueError as exc:
            raise SealingError(f"{where}: not a valid sealed value ({exc}; expected {FORMAT_HINT}, "
                               "as printed by `image-factory seal`)") from None
        key = self._keys.get(parts.key_id)
        if key is None:
            loaded = ", ".join(self._keys) or f"none; set {ENV_KEYS} or {ENV_KEY_DIR}"
            raise SealingError(f"{where}: sealed for key {parts.key_id} which is not loaded (loaded: {loaded})")
        try:
            shared = key.exchange(X25519PublicKey.from_public_bytes(parts.ephemeral))
            aes = _derive(shared, parts.ephemeral, _raw(key.public_key()))
            plaintext = AESGCM(aes).decrypt(parts.nonce, parts.body + parts.tag, _aad(parts.key_id, provider, field))
        except (InvalidTag, ValueError):
            # ValueError: a low-order ephemeral point (all-zero shared secret) = tampering too.
            raise SealingError(f"{where}: integrity check failed (tampered, or sealed for another "
                               "provider or field)") from None
        self.redactor.register(plaintext)
        return plaintext

    def open_all(self, provider: str, credentials: Mapping[str, str]) -> dict[str, bytes]:
        """Every field of a provider's ``credentials``; the first failure raises."""
        return {field: self.open(provider, field, value) for field, value in credentials.items()}


def key_paths_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    paths = [p for p in (env.get(ENV_KEYS) or "").split(os.pathsep) if p.strip()]
    folder = env.get(ENV_KEY_DIR)
    if folder:
        if not os.path.isdir(folder):
            raise SealingError(f"{ENV_KEY_DIR}={folder}: not a directory")
        # Kubernetes Secret volumes hold ..data/ symlinks; the *.key names at the top are what count.
        paths += sorted(glob.glob(os.path.join(glob.escape(folder), "*.key")))
    return paths


# --------------------------------------------------------------------------- files

def write_private_file(path: str | os.PathLike, data: bytes, force: bool = False) -> None:
    """Write ``data`` to a new file that is mode 0600 from its first byte (O_EXCL, never a
    moment world-readable, whatever the umask). An existing file is an error unless ``force``;
    then the new content goes to a fresh 0600 file that atomically replaces the old one."""
    path = os.fspath(path)
    if os.path.lexists(path) and not force:
        raise SealingError(f"{path}: already exists; not overwriting a key (use --force to replace it)")
    target = path if not os.path.lexists(path) else f"{path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise SealingError(f"{path}: already exists; not overwriting a key (use --force to replace it)") from None
    except OSError as exc:
        raise SealingError(f"{path}: cannot create: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is already masked to at most 0600; make it exact
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if target != path:
            os.replace(target, path)
    except BaseException:
        try:
            os.unlink(target)
        except OSError:
            pass
        raise


@contextlib.contextmanager
def private_tempdir(prefix: str = "image-factory-") -> Iterator[str]:
    """A directory only this user can enter (0700), removed with everything in it on exit:
    where an exec plugin's kubeconfig or a client key goes when a tool demands a file."""
    folder = tempfile.mkdtemp(prefix=prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- redaction

_TOKEN = re.compile(r"[A-Za-z0-9+/=_.~-]{16,}")
# Lowercase dotted/dashed/slashed words with short segments are host names, paths, UUIDs and
# YAML keys (k8s.lab.example, certificate-authority-data): not secrets, and masking them would
# make logs useless. Tokens and base64 data have long segments or mixed case.
_IDENTIFIER = re.compile(r"^[a-z0-9]{0,15}(?:[._/~-][a-z0-9]{0,15})+$")  # one separator per step: linear


class Redactor:
    """Masks known secrets in text: ``redact("token abc...")`` -> ``"token ***"``.

    ``register`` takes a plaintext and remembers it, its trimmed form, its base64 encodings and
    every run of 16+ token characters inside it (a kubeconfig's token and base64 data, each line
    of a PEM block), one level into base64 data. Fragments shorter than ``MIN_LENGTH`` are not
    masked (they would mask ordinary words); a secret that short is no secret.
    """

    MASK = "***"
    MIN_LENGTH = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def register(self, secret: bytes | str) -> None:
        fragments = self._fragments(secret, depth=1)
        with self._lock:
            before = len(self._secrets)
            self._secrets.update(f for f in fragments if len(f) >= self.MIN_LENGTH)
            if len(self._secrets) != before:
                self._pattern = None

    def _fragments(self, secret: bytes | str, depth: int) -> set[str]:
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        out = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return out
        out.update({text, text.strip()})
        for token in _TOKEN.findall(text):
            if _IDENTIFIER.match(token):
                continue
            out.add(token)
            if depth > 0 and len(token) >= 24:
                try:
                    inner = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
                    inner.decode("utf-8")
                except (ValueError, binascii.Error, UnicodeDecodeError):
                    continue
                out |= self._fragments(inner, depth - 1)
        return out

    def redact(self, text: str) -> str:
        if not text:
            return text
        with self._lock:
            if not self._secrets:
                return text
            if self._pattern is None:
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            pattern = self._pattern
        return pattern.sub(self.MASK, text)

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} fragments)"

    def logging_filter(self) -> logging.Filter:
        return RedactingFilter(self)


class RedactingFilter(logging.Filter):
    """A logging filter (for handlers) that formats the record's message and redacts it."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or REDACTOR

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not drop the record
            message = str(record.msg)
        record.msg, record.args = self.redactor.redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks: render once, redacted, and keep only the text.
            record.exc_text = self.redactor.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


REDACTOR = Redactor()


def register_secret(secret: bytes | str) -> None:
    """Register a plaintext credential obtained some other way (e.g. an exec plugin's token)."""
    REDACTOR.register(secret)


def redact(text: str) -> str:
    """``text`` with every credential this process has opened replaced by ``***``."""
    return REDACTOR.redact(text)


def _hook_into_structured_logs() -> None:
    # reconciler.logging (structured logs) runs every registered str -> str redactor over each
    # formatted record; hook in once, so any process that can open credentials masks them.
    try:
        from .logging import add_redactor
    except ImportError:
        return
    add_redactor(redact)


_hook_into_structured_logs()


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a RedactingFilter to every handler of ``logger`` (default: the root logger)."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())

"""mTLS material for standalone buildkitd pools: a CA, a server certificate, client certificates.

Certificates must be *stable* (a pass that changes nothing must not re-key the daemon and every
client) and must be *rotated* before they expire. So the renderer never invents key material
when usable material exists: it asks a :class:`CertStore` for the Secret it rendered last time
(the cluster layer answers from the live Secret; tests use :class:`InMemoryCertStore`), keeps
it while it is valid, and issues new material only when it is missing, unparsable, signed by
another CA, for other DNS names, or inside its ``rotateBefore`` window.

Private keys exist only in memory and in Secrets on the cluster: never in Git, logs, status or
golden files. ``image-factory render`` masks Secret data (see ``mask_secret_data``).

Keys are ECDSA P-256 (fast to generate; supported by Go's TLS, which buildkitd and buildctl use).
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

MASK = "<generated on the cluster; not shown>"

SecretData = Mapping[str, str]  # a Secret's .data: key -> base64 text


class CertStore(Protocol):
    """Where existing certificate Secrets are looked up (and, for in-memory stores, kept)."""

    def load(self, cluster: str, namespace: str, name: str) -> SecretData | None: ...

    def save(self, cluster: str, namespace: str, name: str, data: SecretData) -> None: ...


class InMemoryCertStore:
    """A CertStore in a dict: for tests, benchmarks and ``image-factory render`` (one process)."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str, str], dict[str, str]] = {}

    def load(self, cluster: str, namespace: str, name: str) -> SecretData | None:
        return self.secrets.get((cluster, namespace, name))

    def save(self, cluster: str, namespace: str, name: str, data: SecretData) -> None:
        self.secrets[(cluster, namespace, name)] = dict(data)


class LookupCertStore:
    """A CertStore over a lookup callback ``(cluster, namespace, name) -> Secret .data | None``
    (the cluster layer's read of the live Secret). What one pass issues is remembered for the
    rest of the pass, so every build on a pool sees the same material before it is applied."""

    def __init__(self, lookup: Callable[[str, str, str], SecretData | None]) -> None:
        self._lookup = lookup
        self._issued: dict[tuple[str, str, str], dict[str, str]] = {}

    def load(self, cluster: str, namespace: str, name: str) -> SecretData | None:
        return self._issued.get((cluster, namespace, name)) or self._lookup(cluster, namespace, name)

    def save(self, cluster: str, namespace: str, name: str, data: SecretData) -> None:
        self._issued[(cluster, namespace, name)] = dict(data)


@dataclass(frozen=True)
class Policy:
    validity: dt.timedelta
    rotate_before: dt.timedelta
    ca_validity: dt.timedelta = dt.timedelta(days=3650)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


class Issuer:
    """Issues or keeps the CA, server and client certificates of one pool."""

    def __init__(self, store: CertStore, cluster: str, policy: Policy, now: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.cluster = cluster
        self.policy = policy
        self._now = now or (lambda: dt.datetime.now(dt.timezone.utc))

    # -- the three kinds of material ---------------------------------------------------------

    def ca(self, namespace: str, name: str, common_name: str) -> dict[str, str]:
        """Secret data ``ca.crt``/``ca.key``."""
        from cryptography import x509

        data = self.store.load(self.cluster, namespace, name)
        if data is not None:
            cert = self._cert(data.get("ca.crt"))
            key = self._key(data.get("ca.key"))
            if cert is not None and key is not None and self._fresh(cert, self.policy.rotate_before) and \
                    cert.public_key().public_numbers() == key.public_key().public_numbers():
                return dict(data)
        key = self._new_key()
        subject = x509.Name([self._cn(common_name)])
        cert = self._builder(subject, subject, key.public_key(), self.policy.ca_validity) \
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True) \
            .add_extension(self._usage(cert_sign=True), critical=True) \
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False) \
            .sign(key, self._hash())
        out = {"ca.crt": _b64(self._pem(cert)), "ca.key": _b64(self._pem_key(key))}
        self.store.save(self.cluster, namespace, name, out)
        return out

    def leaf(self, namespace: str, name: str, ca: Mapping[str, str], common_name: str,
             dns_names: list[str], server: bool) -> dict[str, str]:
        """Secret data ``ca.crt``/``tls.crt``/``tls.key`` (type kubernetes.io/tls) signed by ``ca``."""
        from cryptography import x509
        from cryptography.x509.oid import ExtendedKeyUsageOID

        ca_cert = self._cert(ca["ca.crt"])
        ca_key = self._key(ca["ca.key"])
        data = self.store.load(self.cluster, namespace, name)
        if data is not None and data.get("ca.crt") == ca["ca.crt"] and \
                self._usable_leaf(data, ca_cert, dns_names if server else None):
            return dict(data)
        key = self._new_key()
        builder = self._builder(x509.Name([self._cn(common_name)]), ca_cert.subject, key.public_key(),
                                self.policy.validity) \
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True) \
            .add_extension(self._usage(), critical=True) \
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False) \
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns_names]), critical=False)
        cert = builder.sign(ca_key, self._hash())
        out = {"ca.crt": ca["ca.crt"], "tls.crt": _b64(self._pem(cert)), "tls.key": _b64(self._pem_key(key))}
        self.store.save(self.cluster, namespace, name, out)
        return out

    # -- checks ------------------------------------------------------------------------------

    def _usable_leaf(self, data: Mapping[str, str], ca_cert, dns_names: list[str] | None) -> bool:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import ec

        cert = self._cert(data.get("tls.crt"))
        key = self._key(data.get("tls.key"))
        if cert is None or key is None or not self._fresh(cert, self.policy.rotate_before):
            return False
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            return False
        try:
            ca_cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        except (InvalidSignature, TypeError, ValueError):
            return False
        if dns_names is not None:
            try:
                sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
            except x509.ExtensionNotFound:
                return False
            if sorted(sans) != sorted(dns_names):
                return False
        return True

    def _fresh(self, cert, margin: dt.timedelta) -> bool:
        now = self._now()
        return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - margin > now

    # -- cryptography helpers ----------------------------------------------------------------

    @staticmethod
    def _cert(text: str | None):
        from cryptography import x509
        raw = _unb64(text)
        if raw is None:
            return None
        try:
            return x509.load_pem_x509_certificate(raw)
        except ValueError:
            return None

    @staticmethod
    def _key(text: str | None):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        raw = _unb64(text)
        if raw is None:
            return None
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError):
            return None
        return key if isinstance(key, ec.EllipticCurvePrivateKey) else None

    @staticmethod
    def _new_key():
        from cryptography.hazmat.primitives.asymmetric import ec
        return ec.generate_private_key(ec.SECP256R1())

    @staticmethod
    def _hash():
        from cryptography.hazmat.primitives import hashes
        return hashes.SHA256()

    @staticmethod
    def _cn(common_name: str):
        from cryptography import x509
        from cryptography.x509.oid import NameOID
        return x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])

    def _builder(self, subject, issuer, public_key, validity: dt.timedelta):
        from cryptography import x509
        now = self._now()
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + validity))

    @staticmethod
    def _usage(cert_sign: bool = False):
        from cryptography import x509
        return x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                             crl_sign=cert_sign, encipher_only=False, decipher_only=False)

    @staticmethod
    def _pem(cert) -> bytes:
        from cryptography.hazmat.primitives import serialization
        return cert.public_bytes(serialization.Encoding.PEM)

    @staticmethod
    def _pem_key(key) -> bytes:
        from cryptography.hazmat.primitives import serialization
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def mask_secret_data(obj: dict) -> dict:
    """A copy of ``obj`` with every Secret value replaced by a fixed mask (for output and goldens)."""
    if obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for section in ("data", "stringData"):
        if isinstance(obj.get(section), dict):
            out[section] = {k: MASK for k in obj[section]}
    return out

"""Encrypt a credential for one provider's spec.credentials, to paste into providers/NAME.yaml.

The secret is read from stdin (or --in FILE), never from the command line, so it does not
end up in shell history or in `ps`. It is encrypted to the reconciler's public key: the
repository's factory.yaml spec.sealing.publicKey (default factory.pub, relative to --repo),
or --public-key. The value opens only for that provider name and that field: copied into
another provider or field, it fails to decrypt. Nothing is written to disk.

  image-factory seal --provider vks-onprem --field token < token.txt
  kubectl config view --raw --minify | image-factory seal --provider lab --field kubeconfig

For single-line fields (token, clientSecret) one trailing newline is dropped (what `echo`
adds); files (kubeconfig, caCert, clientCert, clientKey) are sealed byte for byte.

exit codes: 0 sealed, 2 could not run (no public key, empty input, bad arguments).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from ._common import add_output, print_json

HELP = __doc__

# reconciler.sealing.CREDENTIAL_FIELDS (kept here so that --help does not import cryptography).
FIELDS = ("kubeconfig", "token", "caCert", "clientCert", "clientKey", "clientSecret")
SINGLE_LINE = ("token", "clientSecret")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", required=True, metavar="NAME", help="the provider's metadata.name")
    parser.add_argument("--field", default="token", choices=FIELDS, help="credentials field (default: token)")
    parser.add_argument("--in", dest="infile", default="-", metavar="FILE", help="read the secret from FILE (default: stdin)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--public-key", metavar="PATH", help="public key file (PEM)")
    source.add_argument("--repo", default=".", metavar="PATH",
                        help="repository whose factory.yaml names the public key (default: .)")
    parser.add_argument("--raw", action="store_true", help="print only the sealed value")
    parser.add_argument("--keep-newline", action="store_true",
                        help="keep a trailing newline on token/clientSecret input")
    add_output(parser)


def repo_public_key_path(repo: str) -> str:
    """The public key factory.yaml names (spec.sealing.publicKey), relative to the repository."""
    import yaml

    from ..errors import UsageError

    if not os.path.isdir(repo):
        raise UsageError(f"{repo}: not a directory (give the repository's top folder, or --public-key)")
    name = "factory.pub"
    factory = os.path.join(repo, "factory.yaml")
    if os.path.exists(factory):
        try:
            with open(factory, "rb") as fh:
                data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (OSError, yaml.YAMLError):
            raise UsageError(f"{factory}: cannot be read as YAML; run `image-factory validate`") from None
        sealing = ((data or {}).get("spec") or {}).get("sealing") if isinstance(data, dict) else None
        if isinstance(sealing, dict) and isinstance(sealing.get("publicKey"), str):
            name = sealing["publicKey"]
    return os.path.normpath(os.path.join(repo, name))


def _provider_names(repo: str) -> set[str] | None:
    import glob

    import yaml

    folder = os.path.join(repo, "providers")
    if not os.path.isdir(folder):
        return None
    names = set()
    for path in glob.glob(os.path.join(glob.escape(folder), "*.y*ml")):
        try:
            with open(path, "rb") as fh:
                for doc in yaml.load_all(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
                    if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict):
                        names.add(str(doc["metadata"].get("name")))
        except (OSError, yaml.YAMLError):
            continue
    return names


def _read_secret(infile: str) -> bytes:
    from ..errors import UsageError

    if infile != "-":
        try:
            with open(infile, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise UsageError(f"{infile}: cannot read: {exc.strerror}") from None
    stream = sys.stdin.buffer
    if not sys.stdin.isatty():
        return stream.read()
    print("reading the secret from the terminal: type or paste it, then Ctrl-D (twice if not at the start "
          "of a line); it is not echoed", file=sys.stderr)
    try:
        import termios

        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        new = termios.tcgetattr(fd)
        new[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, new)
    except Exception:  # noqa: BLE001 - not a real terminal: read with echo
        return stream.read()
    try:
        return stream.read()
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, old)
        print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from .. import sealing
    from ..errors import UsageError

    if not _NAME.match(args.provider) or len(args.provider) > 253:
        raise UsageError("--provider must be a provider's metadata.name (lowercase letters, digits, '-', '.')")
    if args.public_key:
        key_path = args.public_key
    else:
        key_path = repo_public_key_path(args.repo)
        names = _provider_names(args.repo)
        if names is not None and args.provider not in names:
            print(f"warning: no provider named {args.provider} in {os.path.join(args.repo, 'providers')}; the value "
                  f"will open only for a provider of that name", file=sys.stderr)
    public = sealing.load_public_key(key_path)

    secret = _read_secret(args.infile)
    if args.field in SINGLE_LINE and not args.keep_newline:
        secret = secret[:-2] if secret.endswith(b"\r\n") else secret[:-1] if secret.endswith(b"\n") else secret
    if not secret.strip():
        raise UsageError("nothing to seal: the input is empty (pipe the secret into stdin, or use --in FILE)")
    if sealing.is_sealed(secret.decode("ascii", "replace").strip()):
        raise UsageError("the input is already a sealed value; to move it to a new key, use `image-factory reseal`")
    value = sealing.seal(public, args.provider, args.field, secret)
    del secret

    kid = sealing.key_id(public)
    if args.output == "json":
        print_json({"provider": args.provider, "field": args.field, "keyId": kid, "publicKey": key_path,
                    "value": value})
    elif args.raw:
        print(value)
    else:
        print("credentials:")
        print(f"  {args.field}: {value}")
    if args.output != "json" and sys.stdout.isatty():
        print(f"(sealed for provider {args.provider}, field {args.field}, key {kid}: paste it under spec: of "
              f"providers/{args.provider}.yaml)", file=sys.stderr)
    return 0

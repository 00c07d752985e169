"""Create the reconciler's sealing key pair (X25519) and print its key id.

Writes, in --out (default: the current directory):
  factory.key   the private key (PEM PKCS#8), mode 0600 from the moment it exists.
                Give it to the reconciler only: IMAGE_FACTORY_SEALING_KEYS=/path/factory.key,
                or a directory of *.key files in IMAGE_FACTORY_SEALING_KEY_DIR. Never commit it.
  factory.pub   the public key (PEM). Commit it to the GitOps repository and name it in
                factory.yaml spec.sealing.publicKey (default factory.pub); `image-factory seal`
                encrypts to it.
  factory-sealing-key-secret.yaml   with --k8s-secret: a Kubernetes Secret (mode 0600) holding
                the private key as <key id>.key, to `kubectl apply` (never commit it) and mount
                at the path in IMAGE_FACTORY_SEALING_KEY_DIR (see deploy/). For a rotation, add
                the old key with --include-key so both stay loaded until `image-factory reseal`
                has been committed.

Existing files are never overwritten unless --force.

exit codes: 0 key pair written, 2 could not run (file exists, unwritable folder).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys

from ._common import add_output, print_json

HELP = __doc__

SECRET_NAME = "image-factory-sealing-key"
SECRET_FILE = "factory-sealing-key-secret.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=".", metavar="DIR", help="folder for the files (default: .)")
    parser.add_argument("--force", action="store_true", help="replace existing files (the old key is lost)")
    parser.add_argument("--k8s-secret", action="store_true", help=f"also write {SECRET_FILE}, a Secret manifest")
    parser.add_argument("--namespace", default="image-factory", metavar="NS",
                        help="namespace of the Secret (default: image-factory)")
    parser.add_argument("--secret-name", default=SECRET_NAME, help=f"name of the Secret (default: {SECRET_NAME})")
    parser.add_argument("--include-key", action="append", default=[], metavar="PATH",
                        help="also put this existing private key in the Secret (rotation: keep the old key loaded)")
    add_output(parser)


def _in_git_worktree(folder: str) -> bool:
    path = os.path.abspath(folder)
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def secret_manifest(name: str, namespace: str, keys: dict[str, bytes]) -> bytes:
    """A Secret with one ``<key id>.key`` entry per private key. JSON-quoted values: no injection."""
    q = json.dumps
    lines = [
        "# The image-factory reconciler's private sealing key(s). SECRET: kubectl apply it, never commit it.",
        "# Mount it as a volume (defaultMode: 0400) and point IMAGE_FACTORY_SEALING_KEY_DIR at the mount path.",
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        f"  name: {q(name)}",
        f"  namespace: {q(namespace)}",
        "  labels:",
        "    app.kubernetes.io/name: image-factory",
        "    app.kubernetes.io/component: sealing-key",
        "  annotations:",
        f"    imagefactory.dev/sealing-key-ids: {q(','.join(keys))}",
        "type: Opaque",
        "data:",
    ]
    lines += [f"  {q(kid + '.key')}: {base64.b64encode(pem).decode('ascii')}" for kid, pem in keys.items()]
    return ("\n".join(lines) + "\n").encode("utf-8")


def run(args: argparse.Namespace) -> int:
    from .. import sealing
    from ..errors import UsageError

    out = args.out
    if not os.path.isdir(out):
        try:
            os.makedirs(out, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{out}: cannot create folder: {exc.strerror}") from None
    key_path = os.path.join(out, "factory.key")
    pub_path = os.path.join(out, "factory.pub")
    secret_path = os.path.join(out, SECRET_FILE) if args.k8s_secret else None
    if args.include_key and not args.k8s_secret:
        raise UsageError("--include-key only makes sense with --k8s-secret")
    if not args.force:  # check every target first, so nothing is half-written
        for path in (key_path, pub_path, secret_path):
            if path and os.path.lexists(path):
                raise UsageError(f"{path}: already exists; not overwriting a key (use --force to replace it, "
                                 "or --out another folder)")
    included = {}
    for path in args.include_key:
        old = sealing.load_private_key(path)
        included[sealing.key_id(old)] = sealing.private_key_pem(old)

    key = sealing.generate_private_key()
    kid = sealing.key_id(key)
    pem = sealing.private_key_pem(key)
    sealing.write_private_file(key_path, pem, force=args.force)
    public = sealing.public_key_pem(key)
    tmp = f"{pub_path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(public)
    os.replace(tmp, pub_path)
    if secret_path:
        keys = {kid: pem, **{k: v for k, v in included.items() if k != kid}}
        sealing.write_private_file(secret_path, secret_manifest(args.secret_name, args.namespace, keys), force=args.force)
    del pem, key

    if _in_git_worktree(out):
        print(f"warning: {os.path.abspath(out)} is inside a Git working tree: commit factory.pub only; never commit "
              f"factory.key{' or ' + SECRET_FILE if secret_path else ''} (add them to .gitignore)", file=sys.stderr)
    if args.output == "json":
        print_json({"keyId": kid, "privateKey": key_path, "publicKey": pub_path, "secretManifest": secret_path,
                    "secretKeyIds": ([kid] + [k for k in included if k != kid]) if secret_path else [],
                    "publicKeyPem": public.decode("ascii")})
        return 0
    print(f"key id: {kid}")
    print(f"private key: {key_path} (mode 0600; give it to the reconciler only, never commit it)")
    print(f"public key:  {pub_path} (commit it; factory.yaml spec.sealing.publicKey names it)")
    if secret_path:
        print(f"secret:      {secret_path} (kubectl apply -f it; never commit it)")
    print("next: image-factory seal --provider NAME --field token < secret-file")
    return 0

"""Re-encrypt every sealed credential in providers/*.yaml to the newest public key.

Key rotation: make a new key pair (`image-factory keygen --out new/`), commit the new
factory.pub (factory.yaml spec.sealing.publicKey names it), load the old AND the new private
key in the reconciler, then run this with the old private key(s) loaded and commit the result.
Once that commit is live, retire the old key.

Private keys come from IMAGE_FACTORY_SEALING_KEYS (paths, ':'-separated),
IMAGE_FACTORY_SEALING_KEY_DIR (a folder of *.key files) and --key PATH. Values already
sealed for the newest key are left alone. Files are edited in place: only the sealed values
change, every comment and all formatting stay as they were. Plaintext is held in memory
only, and never printed.

exit codes: 0 every credential is sealed for the newest key (or would be, with --dry-run),
            1 some credential could not be opened (not loaded key, tampered, bound to another
              provider or field); the others are still resealed,
            2 could not run (no public key, no private key loaded, unreadable repository).
"""

from __future__ import annotations

import argparse
import glob
import os
import stat
import sys
from dataclasses import asdict, dataclass

from ._common import add_output, print_json

HELP = __doc__


@dataclass
class Change:
    path: str
    provider: str
    field: str
    status: str  # resealed | unchanged | error
    fromKey: str | None = None
    toKey: str | None = None
    error: str | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", dest="path", default=".", help="repository directory (default: .)")
    parser.add_argument("--key", action="append", default=[], metavar="PATH",
                        help="also load this private key (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    add_output(parser)


def _splice(text: str, edits: list[tuple[int, int, str, str]]) -> str | None:
    """Replace each old value at (line, column) with the new one; None if a value is not where
    ruamel said it is (block scalar, odd quoting): the caller falls back to a ruamel dump."""
    lines = text.splitlines(keepends=True)
    for line, col, old, new in sorted(edits, reverse=True):
        if line >= len(lines):
            return None
        row = lines[line]
        quote = row[col:col + 1]
        if quote in ("'", '"') and row.startswith(old, col + 1) and row[col + 1 + len(old):col + 2 + len(old)] == quote:
            start = col + 1
        elif row.startswith(old, col):
            start = col
        else:
            return None
        lines[line] = row[:start] + new + row[start + len(old):]
    return "".join(lines)


def _reads_back(text: str, count: int, replaced: list[tuple[int, str, str]]) -> bool:
    try:
        docs = list(_yaml().load_all(text))
        return len(docs) == count and all(docs[i]["spec"]["credentials"][f] == new for i, f, new in replaced)
    except Exception:  # noqa: BLE001
        return False


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 20  # never fold a long sealed value
    return yaml


def _write(path: str, text: str) -> None:
    mode = stat.S_IMODE(os.stat(path).st_mode)
    tmp = f"{path}.reseal-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def reseal_file(path: str, rel: str, keyring, public, new_kid: str) -> tuple[list[Change], str | None]:
    """The changes for one file and its new text (None when nothing changed)."""
    import io

    from .. import sealing
    from ..errors import SealingError, UsageError

    yaml = _yaml()
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
        docs = list(yaml.load_all(text))
    except Exception:  # noqa: BLE001 - unreadable, not UTF-8, not YAML: `validate` explains it; go on
        return [Change(rel, "", "", "error", error=f"{rel}: cannot be read as YAML; its credentials were not "
                       "resealed (run `image-factory validate`)")], None
    changes: list[Change] = []
    edits: list[tuple[int, int, str, str]] = []
    replaced: list[tuple[int, str, str]] = []
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict) or doc.get("kind") != "Provider":
            continue
        name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
        spec = doc.get("spec")
        creds = spec.get("credentials") if isinstance(spec, dict) else None
        if not isinstance(creds, dict):
            continue
        for field, value in creds.items():
            field = str(field)
            if not isinstance(name, str) or not name:
                changes.append(Change(rel, "", field, "error", error=f"credentials.{field}: the provider has no metadata.name"))
                continue
            old_kid = sealing.sealed_key_id(value) if isinstance(value, str) else None
            if old_kid == new_kid:
                changes.append(Change(rel, name, field, "unchanged", old_kid, new_kid))
                continue
            if not len(keyring):
                raise UsageError(f"{rel}: credentials.{field} of provider {name} needs resealing but no private key "
                                 f"is loaded: set {sealing.ENV_KEYS} or {sealing.ENV_KEY_DIR}, or pass --key")
            try:
                if not isinstance(value, str):
                    raise SealingError(f"credentials.{field} of provider {name}: not a sealed value (expected a string)")
                plaintext = keyring.open(name, field, value)
                new = sealing.seal(public, name, field, plaintext)
                del plaintext
            except SealingError as exc:
                changes.append(Change(rel, name, field, "error", old_kid, error=str(exc)))
                continue
            line, col = creds.lc.value(field)
            edits.append((line, col, value, new))
            replaced.append((index, field, new))
            changes.append(Change(rel, name, field, "resealed", old_kid, new_kid))
    if not edits:
        return changes, None
    new_text = _splice(text, edits)
    if new_text is not None and not _reads_back(new_text, len(docs), replaced):
        new_text = None
    if new_text is None:  # fall back to a ruamel round trip (keeps comments; may reflow a little)
        for index, field, new in replaced:
            docs[index]["spec"]["credentials"][field] = new
        buf = io.StringIO()
        yaml.dump_all(docs, buf)
        new_text = buf.getvalue()
    return changes, new_text


def run(args: argparse.Namespace) -> int:
    from .. import sealing
    from ..errors import UsageError
    from .seal import repo_public_key_path

    repo = args.path
    if not os.path.isdir(repo):
        raise UsageError(f"{repo}: not a directory (give the repository's top folder)")
    pub_path = repo_public_key_path(repo)
    public = sealing.load_public_key(pub_path)
    new_kid = sealing.key_id(public)
    keyring = sealing.Keyring.from_env()
    for path in args.key:
        keyring.add_file(path)

    folder = os.path.join(repo, "providers")
    files = sorted(glob.glob(os.path.join(glob.escape(folder), "*.yaml")) + glob.glob(os.path.join(glob.escape(folder), "*.yml")))
    changes: list[Change] = []
    written: list[str] = []
    for path in files:
        rel = os.path.relpath(path, repo)
        file_changes, new_text = reseal_file(path, rel, keyring, public, new_kid)
        changes += file_changes
        if new_text is not None:
            written.append(rel)
            if not args.dry_run:
                _write(path, new_text)

    resealed = [c for c in changes if c.status == "resealed"]
    errors = [c for c in changes if c.status == "error"]
    unchanged = [c for c in changes if c.status == "unchanged"]
    if args.output == "json":
        print_json({"publicKey": pub_path, "keyId": new_kid, "dryRun": args.dry_run, "loadedKeys": list(keyring.key_ids),
                    "files": written, "changes": [asdict(c) for c in changes]})
    else:
        verb = "would reseal" if args.dry_run else "resealed"
        for c in changes:
            if c.status == "resealed":
                print(f"{c.path}: credentials.{c.field} of provider {c.provider}: {verb} {c.fromKey} -> {c.toKey}")
            elif c.status == "error":
                print(f"{c.path}: error: {c.error}" if c.field else f"error: {c.error}")
        summary = (f"{verb} {len(resealed)} credential{'s' * (len(resealed) != 1)} in {len(written)} "
                   f"file{'s' * (len(written) != 1)} to key {new_kid}; {len(unchanged)} already sealed for it")
        if errors:
            summary += f"; {len(errors)} could not be opened"
        if args.dry_run:
            summary += " (dry run: nothing written)"
        print(summary)
    if new_kid not in keyring and resealed:
        print(f"note: the private key of {new_kid} ({pub_path}) is not loaded here; the reconciler needs it to "
              "open these values", file=sys.stderr)
    return 1 if errors else 0

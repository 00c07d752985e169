"""Credentials for a Git remote, handed to git without ever reaching a command line.

``ps`` shows every process's argv to every user of the machine, so a token must never be
an argument. It reaches git through ``GIT_ASKPASS``: a small helper script (no secret in
it) that prints the username, or the token read from a file or an environment variable of
git's own process. SSH uses a key *file* and a known_hosts file the operator provides,
with ``StrictHostKeyChecking=yes``: an unknown or changed host key is an error, never a
prompt and never trust-on-first-use.

Environment (all optional):

- ``IMAGE_FACTORY_GIT_TOKEN`` or ``IMAGE_FACTORY_GIT_TOKEN_FILE``: token for https remotes
  (the file wins; it is re-read on every git call, so a rotated token is picked up);
- ``IMAGE_FACTORY_GIT_USERNAME``: username sent with the token (default ``x-access-token``,
  which GitHub wants; GitLab accepts ``oauth2``; Bitbucket and Gitea take the user name);
- ``IMAGE_FACTORY_GIT_SSH_KEY_FILE``: private key for ssh remotes;
- ``IMAGE_FACTORY_GIT_KNOWN_HOSTS``: known_hosts file for ssh remotes (required for ssh).

Every message that may carry a URL or git's stderr goes through ``redact``.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ..errors import SourceError, TerminalError

ENV_TOKEN = "IMAGE_FACTORY_GIT_TOKEN"
ENV_TOKEN_FILE = "IMAGE_FACTORY_GIT_TOKEN_FILE"
ENV_USERNAME = "IMAGE_FACTORY_GIT_USERNAME"
ENV_SSH_KEY_FILE = "IMAGE_FACTORY_GIT_SSH_KEY_FILE"
ENV_KNOWN_HOSTS = "IMAGE_FACTORY_GIT_KNOWN_HOSTS"

# Private to the askpass helper: set only in the environment of the git process it serves.
_ASKPASS_USER = "IMAGE_FACTORY_ASKPASS_USERNAME"
_ASKPASS_TOKEN = "IMAGE_FACTORY_ASKPASS_TOKEN"
_ASKPASS_TOKEN_FILE = "IMAGE_FACTORY_ASKPASS_TOKEN_FILE"

ASKPASS_SCRIPT = f"""#!/bin/sh
# image-factory: answers git's credential prompts from the environment; holds no secret.
case "$1" in
  Username*|username*) printf '%s\\n' "${_ASKPASS_USER}" ;;
  *) if [ -n "${_ASKPASS_TOKEN_FILE}" ]; then head -n 1 "${_ASKPASS_TOKEN_FILE}"; else printf '%s\\n' "${_ASKPASS_TOKEN}"; fi ;;
esac
"""


class RemoteAuthError(SourceError, TerminalError):
    """The remote refused our credentials, or its host key is not the one we trust."""


class RemoteConfigError(SourceError, TerminalError):
    """The remote cannot be used as configured (missing known_hosts, token over http...)."""


@dataclass(frozen=True)
class GitCredentials:
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    username: str = "x-access-token"
    ssh_key_file: str | None = None
    known_hosts_file: str | None = None

    @classmethod
    def from_env(cls, env: dict | None = None) -> "GitCredentials":
        env = os.environ if env is None else env
        return cls(
            token=env.get(ENV_TOKEN) or None,
            token_file=env.get(ENV_TOKEN_FILE) or None,
            username=env.get(ENV_USERNAME) or "x-access-token",
            ssh_key_file=env.get(ENV_SSH_KEY_FILE) or None,
            known_hosts_file=env.get(ENV_KNOWN_HOSTS) or None,
        )

    @property
    def has_token(self) -> bool:
        return bool(self.token or self.token_file)

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in output (the token, as given and as read)."""
        out = [self.token] if self.token else []
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8", errors="replace") as fh:
                    value = fh.readline().strip()
                if value:
                    out.append(value)
            except OSError:
                pass
        return tuple(s for s in out if len(s) >= 4)


@dataclass(frozen=True)
class RemoteURL:
    """A remote URL with any credentials taken out of it."""

    url: str  # safe to store, log and pass on a command line
    scheme: str  # "file", "https", "http", "ssh"
    username: str | None = None
    password: str | None = field(default=None, repr=False)


_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>(?!//).*)$")


def parse_remote(url: str) -> RemoteURL:
    """Classify a remote URL and split credentials out of an https URL."""
    if "://" not in url:
        if os.path.exists(url) or url.startswith(("/", "./", "../")):
            return RemoteURL(os.path.abspath(url), "file")
        match = _SCP_LIKE.match(url)
        if match:  # git@host:org/repo.git
            return RemoteURL(url, "ssh", match.group("user"))
        return RemoteURL(os.path.abspath(url), "file")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return RemoteURL(url, "file")
    if scheme in ("ssh", "git+ssh", "ssh+git"):
        return RemoteURL(url, "ssh", parts.username)
    if scheme in ("https", "http"):
        if parts.password is not None or parts.username is not None:
            host = parts.hostname or ""
            if ":" in host:
                host = f"[{host}]"
            netloc = host + (f":{parts.port}" if parts.port else "")
            user = parts.username if parts.password is not None else None
            password = parts.password if parts.password is not None else parts.username
            if user:
                # The user name stays in the URL (not a secret), so git asks only for the password.
                netloc = f"{user}@{netloc}"
            clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
            return RemoteURL(clean, scheme, user, password)
        return RemoteURL(url, scheme)
    raise RemoteConfigError(f"unsupported remote URL scheme '{scheme}': use a path, file://, https:// or ssh://")


_URL_USERINFO = re.compile(r"(?i)\b((?:https?|ssh|git\+ssh|ftp)://)([^/@\s]+)@")


def mask_url(url: str) -> str:
    """The URL with any password (or token used as user name) replaced by ***."""
    def repl(match: re.Match) -> str:
        scheme, userinfo = match.group(1), match.group(2)
        if ":" in userinfo:
            return f"{scheme}{userinfo.split(':', 1)[0]}:***@"
        if scheme.lower().startswith("http"):
            return f"{scheme}***@"
        return match.group(0)  # ssh://git@host: the user is not a secret
    return _URL_USERINFO.sub(repl, url)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove credentials from a message: URL user info, and every known secret value."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    text = _URL_USERINFO.sub(lambda m: mask_url(m.group(0)), text)
    return re.sub(r"(?i)(authorization:\s*\S+\s+)\S+", r"\1***", text)


def write_askpass(directory: str) -> str:
    """Write the askpass helper into ``directory`` (private to us) and return its path."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "askpass.sh")
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == ASKPASS_SCRIPT and os.access(path, os.X_OK):
                return path
    except OSError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(ASKPASS_SCRIPT)
    os.chmod(tmp, stat.S_IRWXU)
    os.replace(tmp, path)
    return path


def ssh_command(key_file: str | None, known_hosts: str, connect_timeout: int = 30) -> str:
    """``GIT_SSH_COMMAND``: the key by path, host keys only from the operator's file."""
    parts = ["ssh"]
    if key_file:
        parts += ["-i", shlex.quote(key_file), "-o", "IdentitiesOnly=yes"]
    parts += [
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={shlex.quote(known_hosts)}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
        "-o", "BatchMode=yes",
        "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no",
        "-o", f"ConnectTimeout={int(connect_timeout)}",
    ]
    return " ".join(parts)


def git_env(remote: RemoteURL, creds: GitCredentials, askpass_dir: str, *, allow_http: bool = False,
            connect_timeout: int = 30) -> dict[str, str]:
    """Environment additions that make git authenticate to ``remote`` without prompting."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_SSH_VARIANT": "ssh",
           # Abort a stalled transfer instead of hanging a pass forever.
           "GIT_HTTP_LOW_SPEED_LIMIT": "1000", "GIT_HTTP_LOW_SPEED_TIME": "60"}
    if remote.scheme in ("https", "http"):
        token = remote.password or creds.token
        token_file = None if remote.password else creds.token_file
        if token or token_file:
            if remote.scheme == "http" and not allow_http:
                raise RemoteConfigError(f"{mask_url(remote.url)}: refusing to send a token over plain http; use https")
            env["GIT_ASKPASS"] = write_askpass(askpass_dir)
            env[_ASKPASS_USER] = remote.username or creds.username
            if token_file:
                if not os.path.isfile(token_file):
                    raise RemoteConfigError(f"{ENV_TOKEN_FILE}: {token_file} is not a readable file")
                env[_ASKPASS_TOKEN_FILE] = os.path.abspath(token_file)
            else:
                env[_ASKPASS_TOKEN] = token or ""
    elif remote.scheme == "ssh":
        known = creds.known_hosts_file
        if not known:
            raise RemoteConfigError(
                f"{mask_url(remote.url)}: ssh remotes need a known_hosts file ({ENV_KNOWN_HOSTS}); "
                "host keys are never accepted on first use")
        if not os.path.isfile(known):
            raise RemoteConfigError(f"{ENV_KNOWN_HOSTS}: {known} is not a readable file")
        if creds.ssh_key_file and not os.path.isfile(creds.ssh_key_file):
            raise RemoteConfigError(f"{ENV_SSH_KEY_FILE}: {creds.ssh_key_file} is not a readable file")
        env["GIT_SSH_COMMAND"] = ssh_command(
            os.path.abspath(creds.ssh_key_file) if creds.ssh_key_file else None, os.path.abspath(known), connect_timeout)
    return env

"""The Git mirror against real remotes: file://, an http remote served by git-http-backend
with a token check, and ssh (real sshd when installed; otherwise the command only)."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reconciler.errors import SourceUnavailable, TerminalError
from reconciler.source.credentials import (GitCredentials, RemoteAuthError, RemoteConfigError, git_env, mask_url,
                                           parse_remote, redact, ssh_command)
from reconciler.source.remote import ChangedFile, Mirror, parse_trailers
from tests.helpers import copy_examples, git, init_repo

TOKEN = "ghp_s3cr3tT0kenValue0123456789"


@pytest.fixture
def upstream(tmp_path: Path) -> tuple[Path, Path, str]:
    """(a user's clone, the bare remote, first commit)."""
    work = copy_examples(tmp_path / "user")
    first = init_repo(work)
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    git(work, "remote", "add", "origin", str(bare))
    git(work, "fetch", "-q", "origin")
    git(work, "branch", "-q", "--set-upstream-to=origin/main", "main")
    return work, bare, first


def user_commit(work: Path, path: str, text: str, message: str, email: str = "dev@example.com") -> str:
    full = work / path
    full.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        git(work, "rm", "-q", path)
    else:
        full.write_text(text)
        git(work, "add", path)
    git(work, "commit", "-q", "-m", message, env={"GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_NAME": "Dev"})
    return git(work, "rev-parse", "HEAD").strip()


def test_clone_then_fetch_over_file_url_persists(upstream, tmp_path):
    work, bare, first = upstream
    mirror = Mirror(f"file://{bare}", str(tmp_path / "mirror"), GitCredentials())
    assert mirror.fetch() == {"main": first}
    assert os.path.isfile(tmp_path / "mirror" / "HEAD") and not (tmp_path / "mirror" / "builds").exists()  # bare
    snapshot_files = {e.path for e in mirror.tree("refs/remotes/origin/main").entries()}
    assert "builds/web/frontend.yaml" in snapshot_files
    second = user_commit(work, "builds/web/new.yaml", "kind: BuildRequest\n", "add a build")
    git(work, "push", "-q", "origin", "main")
    # a new Mirror object on the same directory: persisted, only fetches what is new
    again = Mirror(f"file://{bare}", str(tmp_path / "mirror"), GitCredentials())
    assert again.fetch() == {"main": second}
    assert again.changed_files(first, second) == [ChangedFile("builds/web/new.yaml", "A")]
    # a branch deleted upstream is pruned
    git(work, "push", "-q", "origin", "main:feature")
    assert set(again.fetch()) == {"main", "feature"}
    git(work, "push", "-q", "origin", ":feature")
    assert set(again.fetch()) == {"main"}


def test_stale_lock_left_by_a_killed_process_is_cleared(upstream, tmp_path):
    _, bare, first = upstream
    mirror = Mirror(f"file://{bare}", str(tmp_path / "mirror"), GitCredentials())
    mirror.fetch()
    lock = tmp_path / "mirror" / "refs" / "remotes" / "origin" / "main.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    assert mirror.fetch() == {"main": first}
    assert not lock.exists()


def test_workdir_that_is_not_a_mirror_is_refused(upstream, tmp_path):
    _, bare, _ = upstream
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    with pytest.raises(RemoteConfigError, match="not a bare Git repository"):
        Mirror(str(bare), str(tmp_path / "junk"), GitCredentials()).fetch()


def test_unreachable_remote_is_transient(tmp_path):
    mirror = Mirror(f"file://{tmp_path}/nothing-here.git", str(tmp_path / "m"), GitCredentials())
    with pytest.raises(Exception) as info:
        mirror.fetch()
    assert "nothing-here" in str(info.value)
    http = Mirror("https://127.0.0.1:9/repo.git", str(tmp_path / "m2"), GitCredentials(token=TOKEN), timeout=30)
    with pytest.raises(SourceUnavailable) as info:
        http.fetch()
    assert TOKEN not in str(info.value)


def test_changed_files_and_commit_history(upstream, tmp_path):
    work, bare, first = upstream
    a = user_commit(work, "builds/web/frontend.yaml", (work / "builds/web/frontend.yaml").read_text() + "# edited\n",
                    "edit frontend")
    git(work, "checkout", "-q", "-b", "side", first)
    b = user_commit(work, "providers/new.yaml", "kind: Provider\n", "add provider", email="admin@example.com")
    git(work, "checkout", "-q", "main")
    git(work, "merge", "-q", "--no-ff", "side", "-m", "merge side")
    # an "evil merge": the merge itself changes a file that neither side touched
    (work / "pools/eks-general.yaml").write_text("kind: Pool\n# changed in the merge\n")
    git(work, "add", "pools/eks-general.yaml")
    git(work, "commit", "-q", "--amend", "--no-edit", "--reset-author", env={"GIT_AUTHOR_EMAIL": "merger@example.com"})
    merge = git(work, "rev-parse", "HEAD").strip()
    c = user_commit(work, "builds/web/gateway.yaml", None, "delete gateway")
    git(work, "push", "-q", "origin", "main")
    mirror = Mirror(str(bare), str(tmp_path / "mirror"), GitCredentials())
    mirror.fetch()
    changed = {f.path: f.status for f in mirror.changed_files(first, c)}
    assert changed == {"builds/web/frontend.yaml": "M", "providers/new.yaml": "A", "pools/eks-general.yaml": "M",
                       "builds/web/gateway.yaml": "D"}
    commits = mirror.commits(first, c)
    assert [x.sha for x in commits][-1] == c and {x.sha for x in commits} == {a, b, merge, c}
    by = {x.sha: x for x in commits}
    assert by[a].files == (ChangedFile("builds/web/frontend.yaml", "M"),) and by[a].author_email == "dev@example.com"
    assert by[b].author == "admin@example.com" and by[b].parent == first and by[b].summary == "add provider"
    assert by[merge].files == (ChangedFile("pools/eks-general.yaml", "M"),)  # only what the merge itself did
    assert len(by[merge].parents) == 2 and by[merge].author_email == "merger@example.com"
    assert by[c].files == (ChangedFile("builds/web/gateway.yaml", "D"),)
    # the whole history from nothing
    everything = mirror.commits(None, c)
    assert everything[0].sha == first and everything[0].parents == ()
    assert ChangedFile("factory.yaml", "A") in everything[0].files


def test_hostile_commit_message_and_paths_cannot_confuse_the_parser(upstream, tmp_path):
    work, bare, first = upstream
    hostile = "x\x1e\n\nM\nproviders/evil.yaml\n" + "a" * 40
    (work / "builds/web").mkdir(parents=True, exist_ok=True)
    weird = "builds/web/" + "b" * 40 + ".yaml"
    sha = user_commit(work, weird, "kind: BuildRequest\n", hostile)
    git(work, "push", "-q", "origin", "main")
    mirror = Mirror(str(bare), str(tmp_path / "mirror"), GitCredentials())
    mirror.fetch()
    [commit] = mirror.commits(first, sha)
    assert commit.files == (ChangedFile(weird, "A"),)
    assert commit.message.startswith("x\x1e")


def test_trailers():
    assert parse_trailers("status: 2 builds updated\n\nSource-Revision: abc\n") == {"Source-Revision": ["abc"]}
    assert parse_trailers("one paragraph: only\n") == {}
    assert parse_trailers("s\n\nbody text\nSource-Revision: abc\n") == {}


# --- credentials ----------------------------------------------------------------------------


def test_remote_urls_are_split_and_masked():
    r = parse_remote(f"https://bot:{TOKEN}@git.example.com/org/repo.git")
    assert r.url == "https://bot@git.example.com/org/repo.git" and r.password == TOKEN and r.scheme == "https"
    r = parse_remote(f"https://{TOKEN}@git.example.com/org/repo.git")
    assert r.url == "https://git.example.com/org/repo.git" and r.password == TOKEN
    assert parse_remote("git@github.com:org/repo.git").scheme == "ssh"
    assert parse_remote("ssh://git@host:2222/org/repo.git").scheme == "ssh"
    assert parse_remote("/srv/git/repo.git").scheme == "file"
    assert mask_url(f"https://bot:{TOKEN}@h/r.git") == "https://bot:***@h/r.git"
    assert mask_url(f"https://{TOKEN}@h/r.git") == "https://***@h/r.git"
    assert mask_url("ssh://git@h/r.git") == "ssh://git@h/r.git"
    text = f"fatal: unable to access 'https://bot:{TOKEN}@h/r.git/': 403; Authorization: Bearer {TOKEN}"
    assert TOKEN not in redact(text) and TOKEN not in redact(f"token {TOKEN} leaked", (TOKEN,))
    assert "bot:***@h" in redact(text)
    with pytest.raises(RemoteConfigError):
        parse_remote("ftp://h/r.git")


def test_credentials_from_env(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    creds = GitCredentials.from_env({"IMAGE_FACTORY_GIT_TOKEN_FILE": str(token_file), "IMAGE_FACTORY_GIT_USERNAME": "oauth2",
                                     "IMAGE_FACTORY_GIT_SSH_KEY_FILE": "/k", "IMAGE_FACTORY_GIT_KNOWN_HOSTS": "/kh"})
    assert (creds.token_file, creds.username, creds.ssh_key_file, creds.known_hosts_file) == (str(token_file), "oauth2", "/k", "/kh")
    assert TOKEN in creds.secrets()
    assert TOKEN not in repr(GitCredentials(token=TOKEN))


def test_token_is_never_in_argv_and_never_over_plain_http_by_default(tmp_path):
    remote = parse_remote("https://git.example.com/org/repo.git")
    env = git_env(remote, GitCredentials(token=TOKEN), str(tmp_path / "askpass"))
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    script = Path(env["GIT_ASKPASS"]).read_text()
    assert TOKEN not in script and os.access(env["GIT_ASKPASS"], os.X_OK)
    # the askpass helper answers git's two prompts
    run = lambda prompt: subprocess.run([env["GIT_ASKPASS"], prompt], capture_output=True, text=True, env={**os.environ, **env}).stdout
    assert run("Username for 'https://git.example.com': ") == "x-access-token\n"
    assert run("Password for 'https://x-access-token@git.example.com': ") == TOKEN + "\n"
    # no command line a Mirror builds carries it: a Mirror's config passes through the environment
    mirror = Mirror("https://git.example.com/org/repo.git", str(tmp_path / "m"), GitCredentials(token=TOKEN))
    full = mirror.env(network=True)
    assert all(TOKEN not in v for k, v in full.items() if k.startswith("GIT_CONFIG_"))
    with pytest.raises(RemoteConfigError, match="plain http"):
        git_env(parse_remote("http://git.example.com/r.git"), GitCredentials(token=TOKEN), str(tmp_path / "a"))


# --- a real http remote with a token check ----------------------------------------------------


class _GitHTTP(BaseHTTPRequestHandler):
    root: str = ""
    token: str = ""
    argv_leaks: list = []
    requests: list = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def _serve(self):
        self.requests.append(self.path)
        # While git is mid-request, look at every process's command line, as `ps` would.
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        if self.token.encode() in fh.read():
                            self.argv_leaks.append(pid)
                except OSError:
                    pass
        expected = "Basic " + base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {**os.environ, "GIT_PROJECT_ROOT": self.root, "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
               "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": "bot", "REMOTE_ADDR": "127.0.0.1",
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(length),
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
        out = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.split(b"\r\n"):
            key, _, value = line.decode().partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def http_remote(upstream):
    work, bare, first = upstream
    handler = type("Handler", (_GitHTTP,), {"root": str(bare.parent), "token": TOKEN, "argv_leaks": [], "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{bare.name}", handler, work, first
    server.shutdown()
    server.server_close()


def test_fetch_and_push_over_http_with_a_token_that_never_shows_in_ps(http_remote, tmp_path):
    url, handler, work, first = http_remote
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    for creds in (GitCredentials(token=TOKEN), GitCredentials(token_file=str(token_file))):
        mirror = Mirror(url, str(tmp_path / f"m-{bool(creds.token)}"), creds, allow_http_token=True)
        assert mirror.fetch()["main"] == first
        pushed = mirror.push(first, "copy-of-main")
        assert pushed.ok
    assert handler.requests and handler.argv_leaks == []
    assert TOKEN.encode() not in (tmp_path / "m-True" / "config").read_bytes()
    # the token in the URL itself: moved out of the URL before anything is stored
    mirror = Mirror(url.replace("http://", f"http://x-access-token:{TOKEN}@"), str(tmp_path / "m3"), GitCredentials(),
                    allow_http_token=True)
    assert mirror.fetch() == {"main": first, "copy-of-main": first}
    assert TOKEN.encode() not in (tmp_path / "m3" / "config").read_bytes()
    assert handler.argv_leaks == []
    # control: the check does see a token that *is* on a command line
    subprocess.run(["git", "ls-remote", url.replace("http://", f"http://x-access-token:{TOKEN}@")], capture_output=True)
    assert handler.argv_leaks


def test_wrong_token_is_an_auth_error_without_the_token(http_remote, tmp_path):
    url, handler, _, _ = http_remote
    wrong = "wrong-" + TOKEN[::-1]
    mirror = Mirror(url.replace("http://", f"http://bot:{wrong}@"), str(tmp_path / "m"), GitCredentials(),
                    allow_http_token=True)
    with pytest.raises(RemoteAuthError) as info:
        mirror.fetch()
    assert isinstance(info.value, TerminalError)
    assert wrong not in str(info.value) and "bot:" not in str(info.value).replace("bot:***", "")
    no_token = Mirror(url, str(tmp_path / "m2"), GitCredentials())
    with pytest.raises(RemoteAuthError):
        no_token.fetch()


# --- ssh ------------------------------------------------------------------------------------


def test_ssh_needs_known_hosts_and_checks_host_keys_strictly(tmp_path):
    remote = parse_remote("git@git.example.com:org/repo.git")
    with pytest.raises(RemoteConfigError, match="known_hosts"):
        git_env(remote, GitCredentials(ssh_key_file="/nonexistent"), str(tmp_path))
    key = tmp_path / "id with space"
    key.write_text("not really a key")
    known = tmp_path / "known_hosts"
    known.write_text("")
    env = git_env(remote, GitCredentials(ssh_key_file=str(key), known_hosts_file=str(known)), str(tmp_path))
    command = env["GIT_SSH_COMMAND"]
    assert command == ssh_command(str(key), str(known))
    # ssh itself says what it would do with these options (-G prints the resolved config)
    argv = shlex.split(command)
    resolved = subprocess.run([*argv, "-G", "git.example.com"], capture_output=True, text=True).stdout
    config = dict(line.split(" ", 1) for line in resolved.splitlines() if " " in line)
    assert config["stricthostkeychecking"] in ("true", "yes")
    assert config["userknownhostsfile"] == str(known)
    assert config["globalknownhostsfile"] == "/dev/null"
    assert config["batchmode"] == "yes" and config["identitiesonly"] == "yes"
    assert str(key) in [v for k, v in (line.split(" ", 1) for line in resolved.splitlines()) if k == "identityfile"]
    assert config["passwordauthentication"] == "no"


@pytest.fixture
def sshd(tmp_path, upstream):
    binary = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if not binary:
        pytest.skip("sshd is not installed; the ssh command line is tested above")
    work, bare, first = upstream
    d = tmp_path / "ssh"
    d.mkdir(mode=0o700)
    for name in ("host", "client", "other"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = d / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
                      f"PidFile {d / 'pid'}\nStrictModes no\nPasswordAuthentication no\nUsePAM no\n"
                      "PermitRootLogin yes\nKbdInteractiveAuthentication no\n")
    try:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    except OSError:
        pass
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    import time
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.skip(f"sshd could not start here: {proc.stderr.read().decode(errors='replace')[-300:]}")
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.skip("sshd did not start listening")
    host_pub = (d / "host.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    other_pub = (d / "other.pub").read_text().split()
    (d / "wrong_known_hosts").write_text(f"[127.0.0.1]:{port} {other_pub[0]} {other_pub[1]}\n")
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    yield f"ssh://{user}@127.0.0.1:{port}{bare}", d, first
    proc.terminate()
    proc.wait(timeout=10)


def test_real_ssh_fetch_with_key_and_known_hosts(sshd, tmp_path):
    url, d, first = sshd
    good = Mirror(url, str(tmp_path / "m1"), GitCredentials(ssh_key_file=str(d / "client"), known_hosts_file=str(d / "known_hosts")))
    assert good.fetch() == {"main": first}
    assert good.push(first, "via-ssh").ok
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    for known in (empty, d / "wrong_known_hosts"):
        bad = Mirror(url, str(tmp_path / f"m-{known.name}"), GitCredentials(ssh_key_file=str(d / "client"),
                                                                            known_hosts_file=str(known)))
        with pytest.raises(RemoteAuthError, match="host key"):
            bad.fetch()
    wrong_key = Mirror(url, str(tmp_path / "m3"), GitCredentials(ssh_key_file=str(d / "other"), known_hosts_file=str(d / "known_hosts")))
    with pytest.raises(RemoteAuthError):
        wrong_key.fetch()


def test_repr_and_errors_never_show_a_token_in_the_url(tmp_path):
    mirror = Mirror(f"https://bot:{TOKEN}@127.0.0.1:9/r.git", str(tmp_path / "m"), GitCredentials(), timeout=30)
    assert TOKEN not in repr(mirror) and "***@127.0.0.1" in repr(mirror)
    with pytest.raises(SourceUnavailable) as info:
        mirror.fetch()
    assert TOKEN not in str(info.value)
    assert TOKEN not in (tmp_path / "m" / "config").read_text()


def test_a_hung_remote_times_out(tmp_path):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts the connection, never answers
    try:
        mirror = Mirror(f"https://127.0.0.1:{server.getsockname()[1]}/r.git", str(tmp_path / "m"), GitCredentials(),
                        timeout=2)
        with pytest.raises(SourceUnavailable, match="timed out"):
            mirror.fetch()
    finally:
        server.close()

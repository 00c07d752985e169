"""Who may change what: the permission rules, on in-memory commits (logic only).

End-to-end checks on real Git histories live with `review` and `reconcile`.
"""

from __future__ import annotations

from reconciler.policy.authorizing import NOBODY, CommitInfo, FileChange, authorize
from reconciler.source.loading import Loader

from .helpers import EXAMPLES

FACTORY = Loader().load_directory(str(EXAMPLES)).factory
BUILD = (EXAMPLES / "builds/web/frontend.yaml").read_bytes()
FORCED = BUILD.replace(b"  method: docker\n", b"  method: docker\n  infrastructure: kubernetes\n  force: true\n")


def _files(**contents):
    def read(rev, path):
        return contents.get(f"{rev}:{path}")
    return read


def _commit(author, *changes, sha="c1", signer=None, signature="none"):
    return CommitInfo(sha=sha, parent="p0", author=author, committer=author, summary="change",
                      files=tuple(FileChange(p, s) for p, s in changes), signer=signer, signature=signature)


def _violations(commit, read=None, factory=FACTORY):
    [verdict] = authorize([commit], lambda rev: factory, read or _files())
    return [(v.path, v.permission) for v in verdict.violations]


def test_user_adds_a_build_of_their_own_team():
    read = _files(**{"c1:builds/web/new.yaml": BUILD})
    assert _violations(_commit("wendy@acme.example", ("builds/web/new.yaml", "A")), read) == []


def test_identity_is_case_insensitive():
    read = _files(**{"c1:builds/web/new.yaml": BUILD})
    assert _violations(_commit("Wendy@ACME.example", ("builds/web/new.yaml", "A")), read) == []


def test_user_may_not_touch_another_teams_build():
    read = _files(**{"c1:builds/ml/trainer.yaml": BUILD})
    assert _violations(_commit("wendy@acme.example", ("builds/ml/trainer.yaml", "M")), read) == [("builds/ml/trainer.yaml", "team")]


def test_user_may_not_edit_providers_pools_or_factory():
    commit = _commit("wendy@acme.example", ("providers/prod-us-east-1.yaml", "M"), ("pools/eks-gpu.yaml", "A"),
                     ("factory.yaml", "M"))
    assert _violations(commit) == [("providers/prod-us-east-1.yaml", "infrastructure:configure"),
                                   ("pools/eks-gpu.yaml", "infrastructure:configure"),
                                   ("factory.yaml", "infrastructure:configure")]


def test_deleting_a_provider_needs_manage_and_admin_has_it():
    assert _violations(_commit("alice@acme.example", ("providers/rancher-edge.yaml", "D"))) == []
    assert _violations(_commit("oscar@acme.example", ("providers/rancher-edge.yaml", "D"))) == [
        ("providers/rancher-edge.yaml", "infrastructure:manage")]


def test_force_needs_manage():
    read = _files(**{"c1:builds/web/frontend.yaml": FORCED, "p0:builds/web/frontend.yaml": BUILD})
    assert _violations(_commit("wendy@acme.example", ("builds/web/frontend.yaml", "M")), read) == [
        ("builds/web/frontend.yaml", "infrastructure:manage")]
    assert _violations(_commit("alice@acme.example", ("builds/web/frontend.yaml", "M")), read) == []


def test_unchanged_force_left_by_an_admin_does_not_block_a_status_free_noop():
    read = _files(**{"c1:builds/web/frontend.yaml": FORCED, "p0:builds/web/frontend.yaml": FORCED})
    assert _violations(_commit("wendy@acme.example", ("builds/web/frontend.yaml", "M")), read) == []


def test_unknown_author_holds_nothing():
    read = _files(**{"c1:builds/web/new.yaml": BUILD})
    assert _violations(_commit("mallory@evil.example", ("builds/web/new.yaml", "A")), read) == [("builds/web/new.yaml", "team")]


def test_signature_mode_counts_only_verified_signers():
    signed = FACTORY.model.model_copy(update={"spec": FACTORY.model.spec.model_copy(update={
        "identity": FACTORY.model.spec.identity.model_copy(update={"source": "signature", "allowedSignersFile": ".factory/allowed_signers"})})})
    read = _files(**{"c1:pools/new.yaml": b""})
    unsigned = _commit("alice@acme.example", ("pools/new.yaml", "A"))
    [verdict] = authorize([unsigned], lambda rev: signed, read)
    assert verdict.actor == NOBODY and not verdict.allowed
    good = _commit("wendy@acme.example", ("pools/new.yaml", "A"), signer="alice@acme.example", signature="good")
    [verdict] = authorize([good], lambda rev: signed, read)
    assert verdict.actor == "alice@acme.example" and verdict.allowed
    bad = _commit("alice@acme.example", ("pools/new.yaml", "A"), signer="alice@acme.example", signature="bad")
    [verdict] = authorize([bad], lambda rev: signed, read)
    assert verdict.actor == NOBODY and not verdict.allowed


def test_roles_come_from_the_parent_not_the_change_itself():
    # A commit that makes wendy an admin and edits a provider is judged with the old roles.
    assert _violations(_commit("wendy@acme.example", ("factory.yaml", "M"), ("providers/x.yaml", "M"))) == [
        ("factory.yaml", "infrastructure:configure"), ("providers/x.yaml", "infrastructure:configure")]


def test_placement_needs_select():
    placed = BUILD.replace(b"  method: docker\n", b"  method: docker\n  placement:\n    provider: gke-europe-west4\n")
    read = _files(**{"c1:builds/web/frontend.yaml": placed, "p0:builds/web/frontend.yaml": BUILD})
    assert _violations(_commit("wendy@acme.example", ("builds/web/frontend.yaml", "M")), read) == []
    read = _files(**{"c1:builds/mobile/x.yaml": placed, "p0:builds/mobile/x.yaml": BUILD})
    assert _violations(_commit("molly@acme.example", ("builds/mobile/x.yaml", "M")), read) == [
        ("builds/mobile/x.yaml", "infrastructure:select")]

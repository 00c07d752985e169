"""``factory.yaml``: roles, members, teams, write-back and defaults (admin-owned)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .common import API_VERSION, DNSName, Duration, Metadata, Strict, at

# The seed's permission model (000, "Permission Model").
Permission = Literal[
    "infrastructure:configure",  # admin: configure providers
    "infrastructure:manage",  # admin: update or delete providers, force placement
    "infrastructure:monitor",  # admin: view metrics and health
    "infrastructure:select",  # user: choose among offered infrastructure
    "infrastructure:view",  # user: view recommendations
    "build:create:with-infra",  # user: create builds with infrastructure selection
]
PERMISSIONS: tuple[str, ...] = (
    "infrastructure:configure",
    "infrastructure:manage",
    "infrastructure:monitor",
    "infrastructure:select",
    "infrastructure:view",
    "build:create:with-infra",
)


class Role(Strict):
    name: DNSName
    description: str = ""
    permissions: list[Permission] = Field(min_length=1)


class Member(Strict):
    """A person (or bot) known by the identity Git records for them."""

    name: str = ""
    # The commit author/committer e-mail, or, in signed mode, the principal of the signing key.
    identity: str = Field(min_length=3, max_length=254)
    roles: list[DNSName] = Field(min_length=1)
    teams: list[DNSName] = Field(default_factory=list)


class Team(Strict):
    name: DNSName
    description: str = ""
    # Namespace the team's builds run in; defaults to "<namespacePrefix><team>".
    namespace: DNSName | None = None


class IdentityPolicy(Strict):
    # author: trust commit author/committer e-mails. signature: only identities proven by a
    # signature that git verifies count; unsigned or badly signed commits count as no one.
    source: Literal["author", "signature"] = "author"
    allowedSignersFile: str | None = None  # SSH: git's gpg.ssh.allowedSignersFile
    gpgKeyring: str | None = None  # GPG: a keyring file committed to the repository

    @model_validator(mode="after")
    def _signers_needed(self) -> "IdentityPolicy":
        if self.source == "signature" and not (self.allowedSignersFile or self.gpgKeyring):
            raise at("source", "signature needs allowedSignersFile or gpgKeyring")
        return self


class GitIdentity(Strict):
    name: str = Field(min_length=1)
    email: str = Field(min_length=3)


class WriteBack(Strict):
    enabled: bool = True
    # Branch that status commits go to; defaults to the branch being reconciled.
    branch: str | None = None
    author: GitIdentity = GitIdentity(name="image-factory", email="image-factory@localhost")
    # Path (inside the reconciler's environment, never in Git) of an SSH key to sign commits.
    signingKeyFile: str | None = None


class Sealing(Strict):
    # Public key(s) committed to the repository that `image-factory seal` encrypts to.
    publicKey: str = "factory.pub"


class Defaults(Strict):
    infrastructure: Literal["auto", "kubernetes", "build_nodes"] = "auto"
    timeout: Duration = "1h"
    namespacePrefix: str = Field(default="if-", pattern=r"^[a-z0-9-]{0,20}$")
    serviceAccount: DNSName = "image-factory-builder"
    # How long finished runs stay on the cluster before they are pruned.
    finishedRunRetention: Duration = "24h"


class FactorySpec(Strict):
    roles: list[Role] = Field(min_length=1)
    members: list[Member] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    identity: IdentityPolicy = IdentityPolicy()
    writeBack: WriteBack = WriteBack()
    sealing: Sealing = Sealing()
    defaults: Defaults = Defaults()


class FactoryConfig(Strict):
    apiVersion: Literal["imagefactory.dev/v1alpha1"] = API_VERSION
    kind: Literal["FactoryConfig"] = "FactoryConfig"
    metadata: Metadata
    spec: FactorySpec

"""Tool images of the built-in renderers (Jobs, buildkitd). Pipeline templates pin their own.

Pinned by tag so a change is a reviewed commit; mirror them for air-gapped clusters.

**Kaniko.** GoogleContainerTools/kaniko was archived on 2025-06-03 and
``gcr.io/kaniko-project/executor`` gets no more fixes. Of the forks, Chainguard's
(``chainguard-dev/kaniko``, images at ``cgr.dev/chainguard/kaniko``) keeps dependencies patched
but publishes source-only releases; its versioned images are for Chainguard customers, and
the public registry serves only ``latest``, which cannot be pinned. The
``osscontainertools/kaniko`` fork, maintained by Kubernetes community members, publishes
versioned, cosign-signed multi-arch images (``ghcr.io/osscontainertools/kaniko``, mirrored as
``martizih/kaniko``) on a fixed release cadence, fixes bugs as well as dependencies, and is
what Renovate proposes as the replacement for the archived image. So: that one, pinned.
"""

KANIKO = "ghcr.io/osscontainertools/kaniko:v1.27.6"
# The BuildKit release used both as the daemon (standalone pools, BuildKitPool workers) and as
# the client (buildctl) in build Jobs; the rootless variant runs as uid 1000.
BUILDKIT = "docker.io/moby/buildkit:v0.24.0-rootless"
GIT = "docker.io/alpine/git:2.49.1"
# Only the BuildKit-controller client Job uses it: a few lines of standard-library Python
# call the controller's allocation API (JSON over HTTP) and write the issued certificates.
PYTHON = "docker.io/library/python:3.13-alpine"

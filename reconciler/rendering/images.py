"""Tool images of the built-in renderers (Jobs, buildkitd). Pipeline templates pin their own.

Pinned by tag so a change is a reviewed commit; mirror them for air-gapped clusters.

**Kaniko.** GoogleContainerTools/kaniko was archived on 2025-06-03 and
``gcr.io/kaniko-project/executor`` gets no more fixes. Chainguard forked it
(``chainguard-dev/kaniko``) to keep dependencies patched, but releases source only: its images
(``cgr.dev/chainguard/kaniko``) are part of Chainguard's catalogue for its customers, not a
public versioned image one can pin, and the fork has since been reported closed to outside
contributions. The ``osscontainertools/kaniko`` fork, run by Kubernetes community members,
publishes versioned, cosign-signed multi-arch images (``ghcr.io/osscontainertools/kaniko``,
also ``martizih/kaniko``) on a fixed cadence (a patch release every two weeks, behaviour
changes only behind feature flags), fixes bugs as well as dependencies, and is what projects
such as Renovate and buildpacks/pack moved to. So: that one, pinned by version.
"""

KANIKO = "ghcr.io/osscontainertools/kaniko:v1.28.0"
# The BuildKit release used both as the daemon (standalone pools, BuildKitPool workers) and as
# the client (buildctl) in build Jobs; the rootless variant runs as uid 1000.
BUILDKIT = "docker.io/moby/buildkit:v0.24.0-rootless"
GIT = "docker.io/alpine/git:2.49.1"
# Only the BuildKit-controller client Job uses it: a few lines of standard-library Python
# call the controller's allocation API (JSON over HTTP) and write the issued certificates.
PYTHON = "docker.io/library/python:3.13-alpine"

"""Shared pytest setup: the real Kubernetes control-plane fixture (tests/controlplane.py)."""

pytest_plugins = ["tests.controlplane"]

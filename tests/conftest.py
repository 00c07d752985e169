"""Shared pytest setup: the real control-plane fixture and repository helpers."""

from pathlib import Path

# TODO(lead): unconditional once tests/controlplane.py has landed.
pytest_plugins = ["tests.controlplane"] if (Path(__file__).parent / "controlplane.py").exists() else []

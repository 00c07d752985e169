"""Roles, permissions, and who was allowed to change what."""

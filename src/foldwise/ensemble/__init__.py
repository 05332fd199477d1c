"""Blending finished runs: reading their predictions from git/DVC revisions and fitting weights."""

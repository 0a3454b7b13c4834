"""Bridges to other frameworks (optional dependencies, imported only on use)."""

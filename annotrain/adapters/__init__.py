"""Adapters: one per technology and port (filled by the storage issue)."""

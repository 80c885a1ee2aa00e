"""Shared test support: databases, processes, external tools."""

"""autospace node: the composition root (app factory, configuration, store, CLI, worker)."""

__version__ = "0.1.0"

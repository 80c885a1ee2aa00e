"""The node's own HTTP components (each offers ``init_app``)."""

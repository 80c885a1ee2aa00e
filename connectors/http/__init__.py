"""HTTP plumbing shared by every blueprint: problem+json errors, request limits, request ids
and structured logs, peer authentication and management API keys.

Nothing here imports ``node``; the node installs these into its Flask app.
"""

"""Federated learning wired into the node: peer endpoint, HTTP transport, runs, guard.

``federated/`` holds the protocol (no I/O); this package carries its messages over the
authenticated peer channel (:mod:`node.fl.transport`), answers them as a data owner under its
contract agreements (:mod:`node.fl.owner`, :mod:`node.fl.limits`), runs tasks as a coordinator
and logs each round to the ledger (:mod:`node.fl.runs`), and mounts the routes
(:mod:`node.fl.web`, the component listed in ``node.app.COMPONENTS``).
"""

"""Federated learning with SecAgg+ secure aggregation.

A library: protocol messages and sans-IO state machines, models, strategies, differential
privacy, task files. No HTTP and no import of ``node`` or ``connectors``; the node carries the
messages over its authenticated peer channel (see docs/federated.md).
"""

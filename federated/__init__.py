"""Federated learning with SecAgg+ secure aggregation (library: messages and state machines, no HTTP)."""

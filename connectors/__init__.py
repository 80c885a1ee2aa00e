"""Dataspace Protocol 2025-1, management API, data plane, identity and the peer channel."""

"""ODRL 2.2 usage-control engine that fails closed (library: no node/ or connectors/ imports)."""

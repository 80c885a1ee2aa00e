"""Identity and trust of the data space: did:web, membership credentials, peer tokens.

Everything here is a library for the node (``node/`` wires it): keys are reached only
through a :class:`~connectors.identity.signer.Signer`, time through an injected clock,
and the network only through an injected DID resolver and registry source.
"""

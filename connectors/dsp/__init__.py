"""Eclipse Dataspace Protocol 2025-1, without I/O.

Messages in, messages out: :mod:`.messages` parses and builds the wire documents
(validated by :mod:`.validation`), :mod:`.negotiation` and :mod:`.transfer` hold the
process entities and their state tables, :mod:`.negotiation_provider`,
:mod:`.negotiation_consumer` and :mod:`.transfer_handlers` are the machines,
:mod:`.catalog` builds DCAT catalogs, :mod:`.store` and :mod:`.outbox` persist it all and
:mod:`.service` ties them together per endpoint. The HTTP binding only translates
requests to :class:`~connectors.dsp.service.DspProtocol` calls and back. See docs/dsp.md.
"""

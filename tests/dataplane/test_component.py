"""The data plane as a node component: registration, EDR from the app's flow, ledger entries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.dataplane.recorder import SqlAccessRecorder
from connectors.dataplane.web import DATAFLOW_EXTENSION, DATAPLANE_EXTENSION
from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.definitions import Asset
from connectors.dsp.store import ConnectorStore
from connectors.dsp.transfer import TransferProcessEntity
from connectors.dsp.vocabulary import Role, TransferState
from node.app import COMPONENTS, create_app
from node.config import NodeConfig
from node.context import node_context
from node.home import init_home

CONSUMER = "did:web:oem.example"


@pytest.fixture
def app(tmp_path: Path, db_url: str):
    home = tmp_path / "node"
    init_home(home, participant_id="BPNL1", name="One", public_url="http://127.0.0.1:18181",
              database_url=db_url)
    app = create_app(NodeConfig.load(home, env={}))
    yield app
    node_context(app).close()


def test_component_registers_flow_and_serves_pulls_logged_to_ledger(app, tmp_path):
    assert "connectors.dataplane.web" in COMPONENTS
    plane = app.extensions[DATAPLANE_EXTENSION]
    flow = app.extensions[DATAFLOW_EXTENSION]
    assert flow is plane.flow
    ctx = node_context(app)
    data = tmp_path / "d.bin"
    data.write_bytes(b"quality-results")
    now = datetime.now(UTC)
    store = ConnectorStore(ctx.engine)
    agreement = ContractAgreement(f"urn:agreement:{uuid.uuid4()}", "urn:neg", "BPNL1", CONSUMER,
                                  "urn:asset:q", {"@type": "Agreement", "target": "urn:asset:q",
                                                  "permission": [{"action": "use"}]}, now)
    transfer = TransferProcessEntity(
        id="urn:uuid:t1", role=Role.PROVIDER, state=TransferState.STARTED,
        counter_party_id=CONSUMER, counter_party_address="https://oem.example/dsp",
        agreement_id=agreement.id, format="HttpData-PULL", created_at=now, updated_at=now,
        consumer_pid="urn:uuid:c1", provider_pid="urn:uuid:t1", dataset_id="urn:asset:q",
        extra={"claims": {"region": "CN"}})
    with store.transaction() as tx:
        tx.create_asset(Asset(id="urn:asset:q", data_address={"type": "File", "path": str(data)}))
        tx.insert_agreement(agreement)
        tx.save_transfer(transfer)
    edr = flow.start(transfer, agreement)
    assert edr.endpoint == "http://127.0.0.1:18181/dataplane/public"
    client = app.test_client()
    assert client.get("/dataplane/public").status_code == 401
    r = client.get("/dataplane/public", headers={"Authorization": edr.property("authorization")})
    assert r.status_code == 200 and r.data == b"quality-results"
    entry = SqlAccessRecorder(ctx.engine).entries(transfer_id="urn:uuid:t1")[0]
    assert entry["ledger_record_id"], "the access was not appended to the ledger"
    from ledger.tables import logs

    with ctx.engine.connect() as conn:
        origin = conn.execute(select(logs.c.origin)).scalar()
        from ledger.log import Log

        ledger_entry = Log.open(conn, origin, create=False).entry_by_record_id(
            conn, entry["ledger_record_id"])
    assert ledger_entry.record_type == "data-use"
    assert agreement.id in ledger_entry.record_json
    import hashlib
    import json as _json

    record = _json.loads(ledger_entry.record_json)
    assert record["bytes"] == len(b"quality-results")
    assert record["contentHash"] == hashlib.sha256(b"quality-results").hexdigest()
    assert record["transferId"] == "urn:uuid:t1" and record["status"] == "complete"

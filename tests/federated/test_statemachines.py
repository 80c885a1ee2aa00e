"""Every (from, to) pair of both state machines: allowed edges move, all others are refused."""

from __future__ import annotations

import itertools

import pytest

from federated import secagg_client, secagg_server
from federated.errors import TransitionError
from federated.statemachine import StateMachine


@pytest.mark.parametrize("module,states", [
    (secagg_client, secagg_client.ClientState),
    (secagg_server, secagg_server.ServerState),
])
def test_every_transition_pair(module, states) -> None:
    table = module.ALLOWED
    assert set(table) == set(states)
    for a, b in itertools.product(states, repeat=2):
        machine = StateMachine(a, table)
        if b in table[a]:
            machine.transition(b)
            assert machine.state is b
        else:
            with pytest.raises(TransitionError) as err:
                machine.transition(b)
            assert err.value.found == b.name
            assert machine.state is a


def test_terminal_states_are_terminal_and_abort_is_reachable_from_every_live_state() -> None:
    for module, done, aborted in (
        (secagg_client, secagg_client.ClientState.DONE, secagg_client.ClientState.ABORTED),
        (secagg_server, secagg_server.ServerState.DONE, secagg_server.ServerState.ABORTED),
    ):
        assert module.ALLOWED[done] == frozenset() and module.ALLOWED[aborted] == frozenset()
        for state, targets in module.ALLOWED.items():
            if state not in (done, aborted):
                assert aborted in targets

"""Access to an EVM chain through web3.py, and the LogAnchor contract.

Two backends: ``embedded`` (an in-process EVM from eth-tester/py-evm: ephemeral, gone
when the process exits — for trying things out and tests) and ``rpc`` (any JSON-RPC EVM
node: anvil or Hardhat in development, Hyperledger Besu in a consortium). Every failure
to talk to the chain surfaces as `ChainError`, never as a web3 or socket exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import TransactionNotFound

from ledger.errors import ChainError

T = TypeVar("T")
# Contract function that anchors; a constant so the gas figure in docs stays meaningful.
DEPLOY_GAS_MARGIN = 1.25
DEFAULT_PRIORITY_FEE_WEI = 1_000_000_000  # 1 gwei tip
RPC_TIMEOUT_SECONDS = 10


@cache
def artifact() -> dict[str, Any]:
    """The shipped ABI and bytecode of LogAnchor (package data; no compiler at run time)."""
    text = resources.files("ledger.contracts").joinpath("LogAnchor.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class Receipt:
    """What we need from a transaction receipt."""

    tx_hash: str
    status: int
    block_number: int
    block_hash: str
    gas_used: int
    logs: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class AnchorEvent:
    """A decoded ``Anchored`` event."""

    origin: str
    tree_size: int
    root: bytes
    contract: str
    tx_hash: str
    block_number: int


def _guard(what: str, fn: Callable[[], T]) -> T:
    """Run a chain call; any failure becomes a ChainError saying what we were doing."""
    try:
        return fn()
    except ChainError:
        raise
    except TransactionNotFound:
        raise
    except Exception as exc:  # web3, socket, JSON-RPC errors: all operational
        raise ChainError(
            f"EVM node: {what} failed", found=f"{type(exc).__name__}: {exc}"[:300]
        ) from exc


class Chain:
    """One EVM chain reached through web3 (embedded or JSON-RPC)."""

    def __init__(self, w3: Web3, *, backend: str, ephemeral: bool) -> None:
        self.w3 = w3
        self.backend = backend
        self.ephemeral = ephemeral

    @classmethod
    def rpc(cls, url: str, *, timeout: float = RPC_TIMEOUT_SECONDS) -> Chain:
        """A JSON-RPC node at ``url`` (http/https)."""
        if not url.startswith(("http://", "https://")):
            raise ChainError("RPC URL must be http(s)", found=url[:100])
        provider = Web3.HTTPProvider(url, request_kwargs={"timeout": timeout})
        provider.exception_retry_configuration = None  # we retry ourselves, with backoff
        return cls(Web3(provider), backend="rpc", ephemeral=False)

    @classmethod
    def embedded(cls) -> Chain:
        """An in-process EVM (eth-tester + py-evm). EPHEMERAL: all state is lost on exit."""
        from web3 import EthereumTesterProvider

        return cls(Web3(EthereumTesterProvider()), backend="embedded", ephemeral=True)

    # -- reading --------------------------------------------------------------------------
    def chain_id(self) -> int:
        return _guard("eth_chainId", lambda: int(self.w3.eth.chain_id))

    def block_number(self) -> int:
        return _guard("eth_blockNumber", lambda: int(self.w3.eth.block_number))

    def block_hash(self, number: int) -> str | None:
        def get() -> str | None:
            block = self.w3.eth.get_block(number)
            return None if block is None else _hex(block["hash"])

        try:
            return _guard("eth_getBlockByNumber", get)
        except ChainError as exc:
            if "BlockNotFound" in str(exc.found):
                return None
            raise

    def nonce(self, address: str, *, pending: bool = True) -> int:
        tag = "pending" if pending else "latest"
        return _guard(
            "eth_getTransactionCount", lambda: int(self.w3.eth.get_transaction_count(address, tag))
        )

    def balance(self, address: str) -> int:
        return _guard("eth_getBalance", lambda: int(self.w3.eth.get_balance(address)))

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt, or None while the transaction is not in the canonical chain."""
        try:
            r = _guard(
                "eth_getTransactionReceipt", lambda: self.w3.eth.get_transaction_receipt(tx_hash)
            )
        except TransactionNotFound:
            return None
        if r is None or r.get("blockNumber") is None:
            return None
        return Receipt(
            _hex(r["transactionHash"]),
            int(r["status"]),
            int(r["blockNumber"]),
            _hex(r["blockHash"]),
            int(r["gasUsed"]),
            tuple(dict(x) for x in r["logs"]),
        )

    def is_known(self, tx_hash: str) -> bool:
        """Whether the node still knows the transaction (mined or in its pool)."""
        try:
            tx = _guard("eth_getTransactionByHash", lambda: self.w3.eth.get_transaction(tx_hash))
        except TransactionNotFound:
            return False
        return tx is not None

    def fees(self) -> dict[str, int]:
        """Explicit EIP-1559 fees: twice the current base fee plus a fixed tip."""

        def get() -> dict[str, int]:
            block = self.w3.eth.get_block("latest")
            base = int(block.get("baseFeePerGas") or 0)
            tip = DEFAULT_PRIORITY_FEE_WEI
            return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

        return _guard("fee lookup", get)

    # -- writing --------------------------------------------------------------------------
    def send(self, account: LocalAccount, tx: dict[str, Any]) -> str:
        """Sign locally and broadcast; returns the transaction hash."""
        signed = account.sign_transaction(tx)
        return _guard(
            "eth_sendRawTransaction",
            lambda: _hex(self.w3.eth.send_raw_transaction(signed.raw_transaction)),
        )

    def wait(self, tx_hash: str, timeout: float = 60) -> Receipt:
        """Block until mined (deployment and tools; the anchorer never waits)."""
        _guard(
            "waiting for a receipt",
            lambda: self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout),
        )
        receipt = self.receipt(tx_hash)
        if receipt is None:
            raise ChainError("transaction vanished while waiting", found=tx_hash)
        return receipt

    def contract(self, address: str) -> Any:
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=artifact()["abi"]
        )

    def deploy(self, account: LocalAccount) -> str:
        """Deploy LogAnchor owned by ``account``; returns its address."""
        factory = self.w3.eth.contract(abi=artifact()["abi"], bytecode=artifact()["bytecode"])
        base = {
            "from": account.address,
            "chainId": self.chain_id(),
            "nonce": self.nonce(account.address),
        }
        gas = _guard(
            "eth_estimateGas", lambda: factory.constructor().estimate_gas({"from": account.address})
        )
        tx = factory.constructor().build_transaction(
            {**base, **self.fees(), "gas": int(gas * DEPLOY_GAS_MARGIN)}
        )
        receipt = self.wait(self.send(account, tx))
        if receipt.status != 1:
            raise ChainError("contract deployment reverted", found=receipt.tx_hash)
        r = _guard("receipt", lambda: self.w3.eth.get_transaction_receipt(receipt.tx_hash))
        return Web3.to_checksum_address(r["contractAddress"])

    def anchor_tx(
        self,
        contract: str,
        account: LocalAccount,
        *,
        origin: str,
        tree_size: int,
        root: bytes,
        nonce: int,
        gas: int,
        fees: dict[str, int],
    ) -> dict[str, Any]:
        """The anchor transaction with explicit nonce, gas limit and fees (not yet sent)."""
        fn = self.contract(contract).functions.anchor(origin, tree_size, root)
        return _guard(
            "building the anchor transaction",
            lambda: fn.build_transaction(
                {
                    "from": account.address,
                    "chainId": self.chain_id(),
                    "nonce": nonce,
                    "gas": gas,
                    **fees,
                }
            ),
        )

    # -- the contract's view of a log ------------------------------------------------------
    def anchored_root(self, contract: str, origin: str, tree_size: int) -> bytes | None:
        """The root anchored for (origin, tree size), or None."""
        c = self.contract(contract)
        key = Web3.keccak(text=origin)
        root = _guard("rootOf call", lambda: bytes(c.functions.rootOf(key, tree_size).call()))
        return None if root == bytes(32) else root

    def latest_anchored_size(self, contract: str, origin: str) -> int:
        c = self.contract(contract)
        return _guard(
            "latestSize call", lambda: int(c.functions.latestSize(Web3.keccak(text=origin)).call())
        )

    def code_at(self, address: str) -> bytes:
        return _guard(
            "eth_getCode", lambda: bytes(self.w3.eth.get_code(Web3.to_checksum_address(address)))
        )

    def anchor_events(self, contract: str, receipt: Receipt) -> list[AnchorEvent]:
        """Decode the Anchored events that ``contract`` emitted in ``receipt``."""
        c = self.contract(contract)
        event = c.events.Anchored()
        out = []
        for log in receipt.logs:
            if Web3.to_checksum_address(log["address"]) != c.address:
                continue
            try:
                decoded = event.process_log(log)
            except Exception:  # not an Anchored log
                continue
            args = decoded["args"]
            out.append(
                AnchorEvent(
                    args["origin"],
                    int(args["treeSize"]),
                    bytes(args["root"]),
                    c.address,
                    receipt.tx_hash,
                    receipt.block_number,
                )
            )
        return out


def account_from_key(key: bytes | str) -> LocalAccount:
    """The anchoring account for a secp256k1 private key (from the node's key store)."""
    try:
        return Account.from_key(key)
    except Exception as exc:
        raise ChainError("invalid EVM account key", found=type(exc).__name__) from None


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = value.hex() if hasattr(value, "hex") and not isinstance(value, str) else str(value)
    return text if text.startswith("0x") else "0x" + text


def start_embedded(account_key: bytes | str, *, funds_wei: int = 10**21) -> tuple[Chain, str]:
    """An in-process chain with the anchoring account funded and LogAnchor deployed.

    For the ``embedded`` backend at node start-up: returns (chain, contract address).
    EPHEMERAL — the chain and every anchor on it vanish when the process exits.
    """
    chain = Chain.embedded()
    account = account_from_key(account_key)
    w3 = chain.w3

    def fund() -> None:
        tx = w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": account.address, "value": funds_wei}
        )
        w3.eth.wait_for_transaction_receipt(tx)

    _guard("funding the embedded account", fund)
    return chain, chain.deploy(account)

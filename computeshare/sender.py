"""Sends without ape: ape's accounts, the deployment's contracts and transactions over plain
JSON-RPC (`computeshare.reader.JsonRpc`).

A command that sends through ape pays some 3 s for ape's plugins and network machinery
before its first request. Where a read goes without ape (`computeshare.reader.resolve`: a
`--network` that is a URI, or a network whose node URI ape-config.yaml gives), a send does
too, with what ape would use:

- accounts: `computeshare.accounts` (what ape's `--account` takes: ape's keystore and test
  accounts) sign what is sent here.
- transactions (`Transactor.send`): the pending nonce, the chain id, EIP-1559 fees (twice
  the latest base fee plus the node's priority fee; a legacy gas price where blocks have no
  base fee), the gas the caller gives (the CLI's estimate with headroom), signed here with
  eth-account, `eth_sendRawTransaction`, then the receipt, awaited at most
  `receipt_timeout()` seconds.
- contracts (`Contract`): the manifest's address and ABI; `contract.f(*args)` calls a view
  or sends a mutable function, as ape's contract instances do; `estimate_gas_cost` runs
  `eth_estimateGas`, whose revert is `Reverted` with the contract's reason.

Every answer of the node is checked (quantities, hashes, decodable return data): a node
that answers nonsense is a `NodeError`, one line, never a traceback.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from computeshare.abi import _type
from computeshare.accounts import Signer
from computeshare.reader import JsonRpc, NodeError, ReadError

RECEIPT_VARIABLE = "COMPUTESHARE_RECEIPT_TIMEOUT"
DEFAULT_RECEIPT_TIMEOUT = 120.0  # ape-config.yaml's transaction_acceptance_timeout here
DEFAULT_REVERT = "Transaction failed."  # what ape says of a revert without a reason
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)

_QUANTITY = re.compile(r"^0x[0-9a-fA-F]{1,64}$")
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")  # hex bytes: call or return data, code


class SendError(ReadError):
    """A send that cannot go on, as one line."""


class Reverted(SendError):
    """The contract refused: `reason` is its revert reason, the message as the ape path
    shows a `ContractLogicError`."""

    def __init__(self, reason: str):
        super().__init__(f"reverted: {reason}")
        self.reason = reason


MAX_FEE_VARIABLE = "COMPUTESHARE_MAX_FEE_GWEI"
DEFAULT_MAX_FEE_GWEI = 1_000  # per gas: far above any fee a chain asked for in years


def max_fee() -> int:
    """The most a transaction may pay per gas, in wei: COMPUTESHARE_MAX_FEE_GWEI (1,000).
    The fees come from the node, which is hostile too: a node asking more is refused
    before anything is signed."""
    text = os.environ.get(MAX_FEE_VARIABLE, "").strip()
    try:
        gwei = float(text) if text else DEFAULT_MAX_FEE_GWEI
    except ValueError:
        gwei = 0.0
    if not 0 < gwei <= 10**9:
        raise ValueError(f"{MAX_FEE_VARIABLE}={text!r}: give gwei per gas, above 0")
    return int(gwei * 10**9)


def check_fee(asked: int) -> None:
    """SendError if a transaction's fee per gas (its max fee, or its gas price), as the node
    set it, passes `max_fee()`."""
    most = max_fee()
    if asked > most:
        raise SendError(
            f"the node asks up to {asked / 10**9:,.2f} gwei per gas, over "
            f"{MAX_FEE_VARIABLE} ({most / 10**9:,.2f}): set it higher to pay that"
        )


def receipt_timeout() -> float:
    """Seconds a sent transaction's receipt is awaited: COMPUTESHARE_RECEIPT_TIMEOUT, or 120."""
    text = os.environ.get(RECEIPT_VARIABLE, "").strip()
    try:
        value = float(text) if text else DEFAULT_RECEIPT_TIMEOUT
    except ValueError:
        value = 0.0
    if not 0 < value <= 86_400:
        raise ValueError(f"{RECEIPT_VARIABLE}={text!r}: give seconds between 0 and 86400")
    return value


def quantity(value: Any, what: str) -> int:
    """A JSON-RPC quantity the node answered, or NodeError."""
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise NodeError(f"{what}: the node answered {str(value)[:40]!r}, not a quantity")
    return int(value, 16)


# ---------------------------------------------------------------- transactions


def revert_reason(data: Any) -> str:
    """A revert's reason from its data: an `Error(string)`'s text, else ape's default."""
    if not isinstance(data, str) or not data.startswith("0x"):
        return DEFAULT_REVERT
    try:
        raw = bytes.fromhex(data[2:])
    except ValueError:
        return DEFAULT_REVERT
    if raw[:4] == ERROR_SELECTOR:
        from eth_abi import decode

        try:
            (reason,) = decode(["string"], raw[4:])
        except Exception:  # eth_abi's DecodingError and the like: a node's nonsense
            return DEFAULT_REVERT
        return str(reason).splitlines()[0] if str(reason).strip() else DEFAULT_REVERT
    return DEFAULT_REVERT


def _reverted(error: NodeError) -> bool:
    """Whether the node's error is the EVM's revert (geth and anvil: code 3 with the
    revert's data; a message saying "revert" otherwise)."""
    return error.data is not None or "revert" in str(error).lower()


class Transactor:
    """Calls, estimates and sends on one chain over JSON-RPC."""

    def __init__(self, rpc: JsonRpc, chain_id: int):
        self.rpc = rpc
        self.chain_id = chain_id

    def call(self, to: str, data: bytes, sender: str | None = None) -> bytes:
        message = {"to": to, "data": "0x" + data.hex()}
        if sender:
            message["from"] = sender
        try:
            result = self.rpc.request("eth_call", [message, "latest"])
        except NodeError as error:
            if _reverted(error):
                raise Reverted(revert_reason(error.data)) from None
            raise
        if not isinstance(result, str) or not _DATA.fullmatch(result):
            raise NodeError(f"eth_call: the node answered {str(result)[:40]!r}, not data")
        return bytes.fromhex(result[2:])

    def estimate(self, sender: str, to: str, data: bytes, value: int = 0) -> int:
        """`eth_estimateGas`; `Reverted` with the contract's reason when it would revert."""
        message = {"from": sender, "to": to, "data": "0x" + data.hex(), "value": hex(value)}
        try:
            return quantity(self.rpc.request("eth_estimateGas", [message]), "eth_estimateGas")
        except NodeError as error:
            if not _reverted(error):
                raise
            raise Reverted(revert_reason(error.data)) from None

    def fees(self) -> dict:
        """EIP-1559 fees (twice the latest base fee plus the node's priority fee), or a
        legacy gas price where the latest block has no base fee."""
        block = self.rpc.request("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict):
            raise NodeError("eth_getBlockByNumber: the node has no latest block")
        if block.get("baseFeePerGas") is None:
            return self._capped({"gasPrice": self.rpc.quantity("eth_gasPrice")})
        base = quantity(block["baseFeePerGas"], "the latest block's baseFeePerGas")
        try:
            answer = self.rpc.request("eth_maxPriorityFeePerGas")
        except NodeError:  # a node without the method: what its gas price adds to the base
            answer = hex(max(self.rpc.quantity("eth_gasPrice") - base, 0))
        tip = quantity(answer, "eth_maxPriorityFeePerGas")
        return self._capped({"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip})

    @staticmethod
    def _capped(fees: dict) -> dict:
        """The fees, unless they pass `max_fee()` per gas: then SendError, nothing signed."""
        check_fee(fees.get("maxFeePerGas", fees.get("gasPrice", 0)))
        return fees

    def send(self, signer: Signer, to: str, data: bytes, gas: int, value: int = 0) -> dict:
        """Signs and sends the transaction; its receipt, once mined with success."""
        signer.load_key()
        nonce = self.rpc.quantity("eth_getTransactionCount", [signer.address, "pending"])
        transaction = {
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": to,
            "value": value,
            "data": data,
            "gas": gas,
            **self.fees(),
        }
        if "maxFeePerGas" in transaction:
            transaction["type"] = 2
        raw, tx_hash = signer.sign(transaction)
        try:
            answered = self.rpc.request("eth_sendRawTransaction", ["0x" + raw.hex()])
            if not isinstance(answered, str) or answered.lower() != tx_hash:
                raise NodeError(
                    f"eth_sendRawTransaction: the node answered {str(answered)[:70]!r}, not "
                    "the transaction's hash"
                )
            return self.receipt(tx_hash)
        except (ReadError, OSError) as error:
            # Signed, and perhaps sent: the hash lets the user look it up before sending
            # the same again (a second post, a second deposit).
            if tx_hash in str(error):
                raise
            raise SendError(f"{error} (transaction {tx_hash}: signed, perhaps sent)") from None

    def receipt(self, tx_hash: str, timeout: float | None = None) -> dict:
        """The transaction's receipt, polled until it comes (at most `timeout` seconds,
        by default `receipt_timeout()`); SendError if it failed or did not come."""
        timeout = receipt_timeout() if timeout is None else timeout
        deadline, pause = time.monotonic() + timeout, 0.05
        while True:
            receipt = self.rpc.request("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                break
            if time.monotonic() + pause > deadline:
                raise SendError(
                    f"transaction {tx_hash} was sent but not mined within {timeout:g} s: it "
                    "may still be; look it up by its hash before sending it again"
                )
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        if not isinstance(receipt, dict) or receipt.get("transactionHash") != tx_hash:
            raise NodeError(f"eth_getTransactionReceipt: the node answered no receipt of {tx_hash}")
        status = quantity(receipt.get("status"), "the receipt's status")
        block = quantity(receipt.get("blockNumber"), "the receipt's blockNumber")
        if status != 1:
            raise SendError(f"transaction {tx_hash} failed on chain (block {block}): reverted")
        return receipt


# ---------------------------------------------------------------- contracts


def _argument(value: Any, param: dict) -> Any:
    """An argument as eth_abi takes it for `param`: an account or a contract as its address,
    a struct given as a dict (or a `Struct`) as the tuple of its fields in order."""
    kind = param["type"]
    if kind == "address" and not isinstance(value, str) and hasattr(value, "address"):
        return str(value.address)  # an account or a contract, ours or ape's
    if kind.endswith("]") and isinstance(value, list | tuple):
        inner = {**param, "type": kind[: kind.rindex("[")]}
        return [_argument(item, inner) for item in value]
    if kind == "tuple":
        components = param.get("components", [])
        if isinstance(value, dict):
            missing = [c["name"] for c in components if c["name"] not in value]
            if missing:
                raise TypeError(f"{param.get('name') or 'a struct'} lacks {', '.join(missing)}")
            value = [value[c["name"]] for c in components]
        return tuple(_argument(v, c) for v, c in zip(value, components, strict=True))
    return value


class Receipt(dict):
    """A mined transaction's receipt (JSON-RPC's fields), read as ape's: `txn_hash`,
    `block_number`, `gas_used`, raw `logs`, and `return_value`, the call's return value
    from the node's call trace (`debug_traceTransaction`, as ape reads it)."""

    method: Method | None = None

    @property
    def txn_hash(self) -> str:
        return self["transactionHash"]

    @property
    def block_number(self) -> int:
        return quantity(self.get("blockNumber"), "the receipt's blockNumber")

    @property
    def gas_used(self) -> int:
        return quantity(self.get("gasUsed"), "the receipt's gasUsed")

    @property
    def logs(self) -> list[dict]:
        found = self.get("logs")
        return found if isinstance(found, list) else []

    @property
    def return_value(self) -> Any:
        if self.method is None:
            return None
        rpc = self.method.contract.transactor.rpc
        trace = rpc.request("debug_traceTransaction", [self.txn_hash, {"tracer": "callTracer"}])
        output = trace.get("output") if isinstance(trace, dict) else None
        if not isinstance(output, str) or not _DATA.fullmatch(output):
            raise NodeError(f"debug_traceTransaction: no return data for {self.txn_hash}")
        return self.method.decode_output(bytes.fromhex(output[2:]))


class Method:
    """A contract function by name: called like ape's (`contract.f(*args)` reads a view
    and sends a mutable function with `sender=`), with `call`, `estimate_gas_cost` and
    `encode_input`."""

    def __init__(self, contract: Contract, name: str, entries: list[dict]):
        self.contract, self.name, self.entries = contract, name, entries

    def _entry(self, args: tuple) -> dict:
        for entry in self.entries:
            if len(entry.get("inputs", [])) == len(args):
                return entry
        counts = sorted({len(e.get("inputs", [])) for e in self.entries})
        raise TypeError(f"{self.name} takes {' or '.join(map(str, counts))} arguments")

    def encode_input(self, *args) -> bytes:
        from eth_abi import encode
        from eth_utils import keccak

        entry = self._entry(args)
        params = entry.get("inputs", [])
        types = [_type(p) for p in params]
        selector = keccak(text=f"{self.name}({','.join(types)})")[:4]
        values = [_argument(a, p) for a, p in zip(args, params, strict=True)]
        try:
            return selector + encode(types, values)
        except Exception as error:  # eth-abi's EncodingError: a value the type cannot hold
            from computeshare.exceptions import InvalidInput

            text = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
            raise InvalidInput(f"{self.contract.name}.{self.name}: {text}") from None

    def _decode(self, entry: dict, raw: bytes) -> Any:
        from eth_abi import decode

        from computeshare.onchain import plain_value

        outputs = entry.get("outputs", [])
        kinds = [_type(p) for p in outputs]
        try:
            if len(raw) % 32 or len(raw) < 32 * len(kinds):
                raise ValueError("not whole words")
            values = decode(kinds, raw)
        except Exception:  # eth_abi's decoding errors: the node's answer is not this
            raise NodeError(
                f"{self.contract.name}.{self.name}: the node's answer ({len(raw)} bytes) "
                f"does not decode as ({','.join(kinds)})"
            ) from None
        values = tuple(plain_value(v, p) for v, p in zip(values, outputs, strict=True))
        return values[0] if len(values) == 1 else (values or None)

    def decode_output(self, raw: bytes) -> Any:
        """What the function returned, from its raw return data."""
        entries = [e for e in self.entries if e.get("stateMutability") not in ("view", "pure")]
        return self._decode((entries or self.entries)[0], raw)

    def call(self, *args, sender=None) -> Any:
        entry = self._entry(args)
        who = sender.address if isinstance(sender, Signer) else sender
        raw = self.contract.transactor.call(self.contract.address, self.encode_input(*args), who)
        return self._decode(entry, raw)

    def estimate_gas_cost(self, *args, sender: Signer) -> int:
        data = self.encode_input(*args)
        return self.contract.transactor.estimate(sender.address, self.contract.address, data)

    def __call__(self, *args, sender: Signer | None = None, gas: int | None = None):
        entry = self._entry(args)
        if entry.get("stateMutability") in ("view", "pure"):
            return self.call(*args, sender=sender)
        if sender is None:
            raise SendError(f"{self.contract.name}.{self.name} sends: it needs an account")
        if gas is None:
            gas = self.estimate_gas_cost(*args, sender=sender)
        data = self.encode_input(*args)
        receipt = Receipt(self.contract.transactor.send(sender, self.contract.address, data, gas))
        receipt.method = Method(self.contract, self.name, [entry])
        return receipt


class Contract:
    """A deployed contract over JSON-RPC, from its address and ABI."""

    def __init__(self, transactor: Transactor, name: str, address: str, abi: list[dict]):
        self.transactor, self.name, self.address, self.abi = transactor, name, address, abi

    def __str__(self) -> str:
        return self.address

    def method(self, name: str) -> Method:
        entries = [e for e in self.abi if e.get("type") == "function" and e.get("name") == name]
        if not entries:
            raise AttributeError(f"{self.name} has no function {name}")
        return Method(self, name, entries)

    def __getattr__(self, name: str) -> Method:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.method(name)

    def decode_input(self, calldata: bytes) -> tuple[str, dict]:
        """(the function's signature, its arguments by name) of a call to this contract,
        as ape's `decode_input`; ValueError for calldata that matches no function."""
        from eth_abi import decode
        from eth_utils import keccak

        from computeshare.onchain import plain_value

        for entry in self.abi:
            if entry.get("type") != "function":
                continue
            params = entry.get("inputs", [])
            signature = f"{entry['name']}({','.join(_type(p) for p in params)})"
            if keccak(text=signature)[:4] != bytes(calldata[:4]):
                continue
            try:
                values = decode([_type(p) for p in params], bytes(calldata[4:]))
            except Exception:  # eth_abi's decoding errors: arguments that are not these
                raise ValueError(f"calldata of {signature} that does not decode") from None
            return signature, {
                p["name"]: plain_value(v, p) for p, v in zip(params, values, strict=True)
            }
        raise ValueError(f"{self.name} has no function 0x{bytes(calldata[:4]).hex()}")


class PlainChain:
    """The chain over plain JSON-RPC (`computeshare.onchain.Chain`), for `ComputeShare`."""

    def __init__(self, transactor: Transactor):
        self.transactor = transactor

    @property
    def chain_id(self) -> int:
        return self.transactor.chain_id

    def now(self) -> int:
        block = self.transactor.rpc.request("eth_getBlockByNumber", ["pending", False])
        if not isinstance(block, dict):
            raise NodeError("eth_getBlockByNumber: the node has no pending block")
        return quantity(block.get("timestamp"), "the pending block's timestamp")

    def contract(self, name: str, address: str, abi: list[dict]) -> Contract:
        return Contract(self.transactor, name, address, abi)

    def revert_reason(self, error: BaseException) -> str | None:
        return error.reason if isinstance(error, Reverted) else None

    def has_code(self, address: str) -> bool:
        code = self.transactor.rpc.request("eth_getCode", [address, "latest"])
        if not isinstance(code, str) or not _DATA.fullmatch(code):
            raise NodeError(f"eth_getCode: the node answered {str(code)[:40]!r}, not code")
        return len(code) > 2

    def index_node(self) -> JsonRpc:
        return self.transactor.rpc

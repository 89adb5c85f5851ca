"""What the SDK asks of a chain, the same over ape or over plain JSON-RPC.

`ComputeShare` runs on either of two connections, chosen by whoever builds it:

- `ApeChain`: ape's connected provider and contract instances (tests, scripts, the agent,
  and commands whose network only ape can reach);
- `computeshare.sender.PlainChain`: plain JSON-RPC and eth-account (commands whose
  `--network` is a URI or a node ape-config.yaml names), with no ape or web3 loaded.

A connection gives the chain's clock (`now`: the pending block's timestamp, what a
transaction sent now is checked against), its height, contracts built from an address and
an ABI, and whether an exception is the contract's revert (`revert_reason`). Contracts of
both kinds are called alike (`contract.f(*args)` reads a view or sends with `sender=`, and
`contract.f.call(...)`, `.estimate_gas_cost(...)`), and both kinds of receipt carry their
raw `logs` and the call's `return_value`.

Events are read here from raw logs, for either kind of contract (`logs`, `receipt_events`,
`event_topics`): one `eth_getLogs` request, decoded with eth-abi against the contract's ABI.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from eth_utils import keccak, to_checksum_address


class Chain(Protocol):
    """A connection to one chain, as `ComputeShare` uses it."""

    @property
    def chain_id(self) -> int: ...

    def now(self) -> int:
        """The pending block's timestamp: what a transaction sent now is checked against."""
        ...

    def height(self) -> int:
        """The latest block's number."""
        ...

    def contract(self, name: str, address: str, abi: list[dict]) -> Any:
        """The deployment's contract `name` at `address`."""
        ...

    def revert_reason(self, error: BaseException) -> str | None:
        """The contract's revert reason if `error` is a revert, else None."""
        ...

    def index_node(self) -> Any:
        """What `computeshare.index.EventIndex.open` reads the chain through."""
        ...


class ApeChain:
    """The connection ape's `chain` manages (its provider, accounts and contracts)."""

    @property
    def chain_id(self) -> int:
        from ape import chain

        return chain.chain_id

    def now(self) -> int:
        from ape import chain

        return chain.pending_timestamp

    def height(self) -> int:
        from ape import chain

        return chain.blocks.height

    def contract(self, name: str, address: str, abi: list[dict]) -> Any:
        from ape import Contract

        return Contract(address, abi=abi)

    def revert_reason(self, error: BaseException) -> str | None:
        from ape.exceptions import ContractLogicError

        return error.message if isinstance(error, ContractLogicError) else None

    def index_node(self) -> Any:
        from ape import chain

        return chain.provider.web3


# ---------------------------------------------------------------- events


class Log:
    """A decoded event log: `event_name`, `event_arguments` (also readable as attributes),
    `contract_address`, `block_number`, `transaction_hash`, `log_index`."""

    def __init__(self, name: str, arguments: dict, raw: dict):
        self.event_name, self.event_arguments = name, arguments
        self.contract_address = to_checksum_address(_hex_text(raw.get("address")))
        self.block_number = _number(raw.get("blockNumber"))
        self.log_index = _number(raw.get("logIndex"))
        self.transaction_hash = "0x" + _hex_text(raw.get("transactionHash"))

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["event_arguments"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"<{self.event_name} {self.event_arguments}>"


def abi_entries(contract) -> list[dict]:
    """The contract's ABI as JSON entries (a plain contract's own; an ape instance's from
    its contract type)."""
    abi = contract.__dict__.get("abi") if hasattr(contract, "__dict__") else None
    if isinstance(abi, list):
        return abi
    contract_type = contract.contract_type
    key = id(contract_type)
    if key not in _ABIS:
        _ABIS[key] = (contract_type, [
            entry.model_dump(mode="json", by_alias=True, exclude_none=True)
            for entry in contract_type.abi
        ])  # fmt: skip
    return _ABIS[key][1]


_ABIS: dict[int, tuple[Any, list[dict]]] = {}  # id -> (an ape contract type, its ABI as JSON)


def request(contract) -> Callable[[str, list], Any]:
    """Raw JSON-RPC requests to the node `contract` lives on."""
    transactor = contract.__dict__.get("transactor") if hasattr(contract, "__dict__") else None
    if transactor is not None:
        return transactor.rpc.request
    return contract.chain_manager.provider.make_request


def _type(param: dict) -> str:
    from computeshare.abi import _type

    return _type(param)


def event_entry(contract, name: str) -> dict:
    for entry in abi_entries(contract):
        if entry.get("type") == "event" and entry.get("name") == name:
            return entry
    raise AttributeError(f"the contract has no event {name}")


def event_topic(entry: dict) -> str:
    """The event's first topic: keccak256 of its signature, as 0x-hex."""
    types = ",".join(_type(p) for p in entry.get("inputs", []))
    return "0x" + keccak(text=f"{entry['name']}({types})").hex()


def _hex_text(value: Any) -> str:
    if value is None:
        return ""
    text = bytes(value).hex() if isinstance(value, bytes | bytearray) else str(value)
    return text.removeprefix("0x")


def _number(value: Any) -> int | None:
    if value is None:
        return None
    return value if isinstance(value, int) else int(str(value), 16)


def plain_value(value: Any, param: dict) -> Any:
    """A value eth-abi decoded, as the SDK uses it: addresses checksummed, structs as
    `Struct` (fields as attributes), arrays as lists."""
    kind = param["type"]
    if kind.endswith("]"):
        inner = {**param, "type": kind[: kind.rindex("[")]}
        return [plain_value(item, inner) for item in value]
    if kind == "tuple":
        components = param.get("components", [])
        return Struct(
            (c["name"], plain_value(v, c)) for c, v in zip(components, value, strict=True)
        )
    if kind == "address":
        return to_checksum_address(value)
    return value


class Struct(dict):
    """A decoded struct: a dict of its fields in order, also read as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _raw_log(raw: Any, where: str) -> tuple[Mapping, list[str]]:
    """A raw log the node answered and its topics as hex text; NodeError when it is not a
    log (a hostile or broken node's answer is one line, never a traceback)."""
    from computeshare.reader import NodeError

    topics = raw.get("topics") if isinstance(raw, Mapping) else None
    if (
        not isinstance(topics, list | tuple)
        or not topics
        or not isinstance(raw.get("address"), str)
    ):
        raise NodeError(f"{where}: the node answered {str(raw)[:60]!r}, not a log")
    texts = [_hex_text(topic).lower() for topic in topics]
    if not all(_TOPIC.fullmatch(text) for text in texts):
        raise NodeError(f"{where}: the node answered a log whose topics are not 32-byte hex")
    return raw, texts


_TOPIC = re.compile(r"[0-9a-f]{64}")


def decode_log(entry: dict, raw: dict) -> Log:
    """The raw log (as eth_getLogs or a receipt gives it) decoded as the event `entry`;
    `reader.NodeError` when it is not one."""
    from eth_abi import decode

    inputs = entry.get("inputs", [])
    indexed = [p for p in inputs if p.get("indexed")]
    plain = [p for p in inputs if not p.get("indexed")]
    try:
        topics = [bytes.fromhex(_hex_text(t)) for t in raw["topics"]]
        data = bytes.fromhex(_hex_text(raw.get("data")))
        values = dict(zip([p["name"] for p in plain], decode([_type(p) for p in plain], data),
                          strict=True))  # fmt: skip
        for param, topic in zip(indexed, topics[1:], strict=True):
            values[param["name"]] = decode([_type(param)], topic)[0]
        arguments = {p["name"]: plain_value(values[p["name"]], p) for p in inputs}
        return Log(entry["name"], arguments, raw)
    except Exception:  # eth-abi's decoding errors, a short topic list: not this event
        from computeshare.reader import NodeError

        raise NodeError(f"a log that does not decode as {entry['name']}") from None


def logs(contract, events: list[str], since: int = 0, where: list | None = None) -> list[Log]:
    """The contract's logs of these events since block `since`, decoded, in chain order:
    one `eth_getLogs` request. `where` filters the indexed arguments as `eth_getLogs`
    topics do (one entry per argument: None for any, a hex topic, or a list of them)."""
    entries = {event_topic(e): e for e in (event_entry(contract, name) for name in events)}
    raw = request(contract)(
        "eth_getLogs",
        [
            {
                "address": str(contract.address),
                "fromBlock": hex(since),
                "toBlock": "latest",
                "topics": [list(entries), *(where or [])],
            }
        ],
    )
    if not isinstance(raw, list):
        from computeshare.reader import NodeError

        raise NodeError(f"eth_getLogs: the node answered {str(raw)[:60]!r}, not logs")
    found = []
    for log in raw:
        log, topics = _raw_log(log, "eth_getLogs")
        if "0x" + topics[0] not in entries:
            from computeshare.reader import NodeError

            raise NodeError("eth_getLogs: the node answered a log of another event")
        found.append(decode_log(entries["0x" + topics[0]], log))
    return found


def event_topics(contract, event: str, since: int = 0, where: list | None = None) -> list[list]:
    """The topics (the event's signature, then its indexed arguments, as 32-byte values)
    of every `event` of `contract` since block `since`, in chain order: one `eth_getLogs`
    request, nothing decoded (`where` as in `logs`)."""
    topic = event_topic(event_entry(contract, event))
    raw = request(contract)(
        "eth_getLogs",
        [
            {
                "address": str(contract.address),
                "fromBlock": hex(since),
                "toBlock": "latest",
                "topics": [topic, *(where or [])],
            }
        ],
    )
    if not isinstance(raw, list):
        from computeshare.reader import NodeError

        raise NodeError(f"eth_getLogs: the node answered {str(raw)[:60]!r}, not logs")
    return [[bytes.fromhex(t) for t in _raw_log(log, "eth_getLogs")[1]] for log in raw]


def receipt_events(receipt, contract, name: str) -> list[dict]:
    """The arguments of each `name` event `contract` emitted in the transaction of
    `receipt` (ape's receipt, or a plain one), in order."""
    entry = event_entry(contract, name)
    topic, address = event_topic(entry)[2:], str(contract.address).lower()
    found = []
    for raw in receipt.logs:
        raw, topics = _raw_log(raw, "the receipt")
        if topics[0] != topic or _hex_text(raw["address"]).lower() != address[2:]:
            continue
        found.append(decode_log(entry, raw).event_arguments)
    return found

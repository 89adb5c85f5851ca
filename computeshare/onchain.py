"""What the SDK asks of a chain, the same over ape or over plain JSON-RPC.

`ComputeShare` runs on either of two connections, chosen by whoever builds it:

- `ApeChain`: ape's connected provider and contract instances (tests, scripts, the agent,
  and commands whose network only ape can reach);
- `computeshare.sender.PlainChain`: plain JSON-RPC and eth-account (commands whose
  `--network` is a URI or a node ape-config.yaml names), with no ape or web3 loaded.

A connection gives the chain's clock (`now`: the pending block's timestamp, what a
transaction sent now is checked against), contracts built from an address and
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

from computeshare.abi import _type
from computeshare.exceptions import ComputeShareError


class Chain(Protocol):
    """A connection to one chain, as `ComputeShare` uses it."""

    @property
    def chain_id(self) -> int: ...

    def now(self) -> int:
        """The pending block's timestamp: what a transaction sent now is checked against."""
        ...

    def contract(self, name: str, address: str, abi: list[dict]) -> Any:
        """The deployment's contract `name` at `address`."""
        ...

    def revert_reason(self, error: BaseException) -> str | None:
        """The contract's revert reason if `error` is a revert, else None."""
        ...

    def has_code(self, address: str) -> bool:
        """Whether `address` holds code (a contract, e.g. an EIP-1271 wallet)."""
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

    def contract(self, name: str, address: str, abi: list[dict]) -> Any:
        from ape import Contract

        return Contract(address, abi=abi)

    def revert_reason(self, error: BaseException) -> str | None:
        from ape.exceptions import ContractLogicError

        return error.message if isinstance(error, ContractLogicError) else None

    def has_code(self, address: str) -> bool:
        from ape import chain

        return len(chain.provider.get_code(address)) > 0

    def index_node(self) -> Any:
        from ape import chain

        return chain.provider.web3


def send(method, *args, **kwargs):
    """Sends `method(*args, **kwargs)`, a contract method of either connection, within the
    fee cap. Over plain JSON-RPC as it is (`sender.Transactor` checks the fees it asks the
    node for); through ape prepared first (ape takes the fees from the node too, which is as
    hostile as any input), the fee checked against `sender.max_fee()`, and only then signed
    and sent. The library's sends (`ComputeShare.transact`), the CLI's and the agent's all
    go through here."""
    if not hasattr(method, "as_transaction"):
        return method(*args, **kwargs)
    from computeshare.sender import check_fee

    transaction = method.as_transaction(*args, **kwargs)  # fees, gas and nonce, unsigned
    fee = getattr(transaction, "max_fee", None)
    check_fee(fee if fee is not None else getattr(transaction, "gas_price", None) or 0)
    return kwargs["sender"].call(transaction)


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
    """A decoded struct: a dict of its fields in order, also read as attributes, by
    position (`s[0]`) and compared with a tuple of its values, as ape's structs are (but
    iterated, as a dict, by field name)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int) and not isinstance(key, bool):
            return list(self.values())[key]
        return super().__getitem__(key)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, tuple | list):
            return tuple(self.values()) == tuple(other)
        return super().__eq__(other)

    __hash__ = None  # a mutable mapping, as dict


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


def _hashed(param: dict) -> bool:
    """Whether an indexed event argument is logged as its keccak256 (a dynamic type)."""
    kind = param["type"]
    return kind in ("string", "bytes") or kind.startswith("tuple") or kind.endswith("]")


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
            # An indexed string, bytes, struct or array is logged as its keccak256 only.
            values[param["name"]] = topic if _hashed(param) else decode([_type(param)], topic)[0]
        arguments = {
            p["name"]: values[p["name"]]
            if p in indexed and _hashed(p)
            else plain_value(values[p["name"]], p)
            for p in inputs
        }
        return Log(entry["name"], arguments, raw)
    except Exception:  # eth-abi's decoding errors, a short topic list: not this event
        from computeshare.reader import NodeError

        raise NodeError(f"a log that does not decode as {entry['name']}") from None


def _get_logs(contract, first: list[str], where: list | None, since: int) -> list[tuple]:
    """One `eth_getLogs` of `contract` since block `since` whose first topic is one of
    `first` and whose next topics match `where` (None for any, a hex topic or a list of
    them): each (raw log, its topics as hex text). The node's answer is checked against
    the query (the contract's address, the topics asked for, no log of a dropped block):
    a node that ignores a filter cannot pass one job's events off as another's."""
    from computeshare.reader import NodeError

    query = [first, *(where or [])]
    raw = request(contract)(
        "eth_getLogs",
        [
            {
                "address": str(contract.address),
                "fromBlock": hex(since),
                "toBlock": "latest",
                "topics": query,
            }
        ],
    )
    if not isinstance(raw, list):
        raise NodeError(f"eth_getLogs: the node answered {str(raw)[:60]!r}, not logs")
    address, found = str(contract.address).lower().removeprefix("0x"), []
    allowed = [_topic_set(want) for want in query]
    for log in raw:
        log, topics = _raw_log(log, "eth_getLogs")
        matches = all(
            ok is None or (i < len(topics) and topics[i] in ok) for i, ok in enumerate(allowed)
        )
        if not matches or _hex_text(log["address"]).lower() != address:
            raise NodeError("eth_getLogs: the node answered a log the query does not ask for")
        if log.get("removed") is True:
            continue  # a log of a block the chain dropped
        found.append((log, topics))
    return found


def _topic_set(want: Any) -> set[str] | None:
    """A topic position of a query as the topics it allows (hex, lower case), or None."""
    if want is None:
        return None
    items = [want] if isinstance(want, str) else list(want)
    return {_hex_text(item).lower() for item in items}


def logs(contract, events: list[str], since: int = 0, where: list | None = None) -> list[Log]:
    """The contract's logs of these events since block `since`, decoded, in chain order:
    one `eth_getLogs` request. `where` filters the indexed arguments as `eth_getLogs`
    topics do (one entry per argument: None for any, a hex topic, or a list of them)."""
    entries = {event_topic(e): e for e in (event_entry(contract, name) for name in events)}
    return [
        decode_log(entries["0x" + topics[0]], log)
        for log, topics in _get_logs(contract, list(entries), where, since)
    ]


def event_topics(contract, event: str, since: int = 0, where: list | None = None) -> list[list]:
    """The topics (the event's signature, then its indexed arguments, as 32-byte values)
    of every `event` of `contract` since block `since`, in chain order: one `eth_getLogs`
    request, nothing decoded (`where` as in `logs`)."""
    first = [event_topic(event_entry(contract, event))]
    return [
        [bytes.fromhex(t) for t in topics] for _, topics in _get_logs(contract, first, where, since)
    ]


def receipt_events(receipt, contract, name: str) -> list[dict]:
    """The arguments of each `name` event `contract` emitted in the transaction of
    `receipt` (ape's receipt, or a plain one), in order."""
    entry = event_entry(contract, name)
    topic, address = event_topic(entry)[2:], str(contract.address).lower()
    found = []
    tx_hash = _hex_text(getattr(receipt, "txn_hash", None)).lower()
    for raw in receipt.logs:
        if isinstance(raw, Mapping) and raw.get("topics") == []:
            continue  # an anonymous log (LOG0), which any contract called may emit: no event
        raw, topics = _raw_log(raw, "the receipt")
        logged = _hex_text(raw.get("transactionHash")).lower()
        if tx_hash and logged and logged != tx_hash:
            from computeshare.reader import NodeError

            raise NodeError("the receipt holds a log of another transaction")
        if topics[0] != topic or _hex_text(raw["address"]).lower() != address[2:]:
            continue
        found.append(decode_log(entry, raw).event_arguments)
    return found


def operation_event(receipt, contract, name: str, **expected) -> dict:
    """The arguments of the first `name` event `contract` emitted in `receipt` whose
    arguments include `expected` (the job, the account): what an operation answers (a
    device's or a job's id, an amount) comes from its events, which every node serves,
    not from a call trace, which public nodes often refuse."""
    for event in receipt_events(receipt, contract, name):
        if all(_same(event.get(key), value) for key, value in expected.items()):
            return dict(event)
    raise ComputeShareError(f"the transaction emitted no {name} event of this operation")


def _same(found: Any, wanted: Any) -> bool:
    if isinstance(wanted, bytes | bytearray):
        return isinstance(found, bytes | bytearray) and bytes(found) == bytes(wanted)
    if isinstance(wanted, str):
        return str(found).lower() == wanted.lower()
    return found == wanted

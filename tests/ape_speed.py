"""What ape 0.8.51 repeats for every contract call and transaction, kept for the session.

Profiled on the escrow state machine (5 examples, 45 steps): a view call through ape cost
38 ms, of which 15 ms rebuilt the network's pydantic settings to look up the default
transaction type, 4 ms asked the node whether the contract has code, 2.5 ms fetched the
latest block for its gas limit, and requests read the proxy variables from the environment
for every request (1.2 ms); the eth_call itself took 4 ms. Within a test session none of
those answers changes (no test here alters the block gas limit or removes a contract it
then calls, and the node is on loopback), so each is asked once per network, address or
provider. The first answer is ape's own; only the repetition is saved. Not imported by the
product: the agent and the CLI run ape as it is.

A transaction waited up to 0.1 s for its receipt (web3's poll; anvil mines in a millisecond
or two) and then asked the node for the sender's nonce and whether the receiver has code:
receipts are polled every 5 ms, a mined receipt needs no nonce check, and code once seen is
remembered. `read_all` asks many view calls in one JSON-RPC batch: the state machines'
invariants read tens of views after every step.
"""

from __future__ import annotations


def keep_answers_for_the_session() -> None:
    from ape.contracts.base import ContractMethodHandler
    from ape_ethereum.ecosystem import Ethereum
    from ape_ethereum.provider import Web3Provider

    transaction_type = Ethereum.default_transaction_type.fget
    types: dict = {}

    def default_transaction_type(self):
        provider = self.network_manager.active_provider
        key = (id(self), provider.network.name if provider else None)
        if key not in types:
            types[key] = transaction_type(self)
        return types[key]

    Ethereum.default_transaction_type = property(default_transaction_type)

    validate = ContractMethodHandler._validate_is_contract
    with_code: set = set()

    def validate_is_contract(self):
        key = (id(self.provider), self.contract.address)
        if key not in with_code:
            validate(self)  # raises when there is no code: only a contract is kept
            with_code.add(key)

    ContractMethodHandler._validate_is_contract = validate_is_contract

    max_gas = Web3Provider.max_gas.fget
    limits: dict = {}

    def block_gas_limit(self):
        if id(self) not in limits:
            limits[id(self)] = max_gas(self)
        return limits[id(self)]

    Web3Provider.max_gas = property(block_gas_limit)

    # After each transaction ape asks whether its receiver has code, to show the debug logs
    # of a contract: code, once there, is kept (only an answer of yes is remembered).
    from ape.api.address import BaseAddress

    is_contract = BaseAddress.is_contract.fget
    contracts: set = set()

    def has_code(self):
        key = (id(self.provider), self.address)
        if key in contracts:
            return True
        if answer := is_contract(self):
            contracts.add(key)
        return answer

    BaseAddress.is_contract = property(has_code)

    # ape waits for each receipt with web3's default poll of 0.1 s; anvil mines a
    # transaction within a millisecond or two, so a wait that misses it costs 0.1 s.
    from web3.eth import Eth

    wait_for_receipt = Eth.wait_for_transaction_receipt

    def wait_for_transaction_receipt(self, transaction_hash, timeout=120, poll_latency=0.005):
        return wait_for_receipt(self, transaction_hash, timeout, poll_latency)

    Eth.wait_for_transaction_receipt = wait_for_transaction_receipt

    # Before it returns a receipt, ape asks the node for the sender's nonce until it has
    # passed the transaction's. A receipt in a mined block says that already: the node
    # counts the transaction in the sender's nonce from that block on. A receipt of no
    # block yet (manual mining) is still waited for as ape does.
    from ape.api.transactions import ReceiptAPI

    await_nonce = ReceiptAPI._await_sender_nonce_increment

    def await_sender_nonce_increment(self):
        if not (isinstance(self.block_number, int) and self.block_number >= 0):
            await_nonce(self)

    ReceiptAPI._await_sender_nonce_increment = await_sender_nonce_increment

    # The node is on loopback: web3's HTTP sessions need no proxy from the environment.
    from web3._utils.http_session_manager import HTTPSessionManager

    cache_session = HTTPSessionManager.cache_and_return_session

    def cache_and_return_session(self, *args, **kwargs):
        session = cache_session(self, *args, **kwargs)
        session.trust_env = False
        return session

    HTTPSessionManager.cache_and_return_session = cache_and_return_session


def forget_dead_nodes() -> None:
    """ape lists the anvils it starts in ~/.ape/processes/nodes.json and forgets one only
    when its session ends cleanly, so every killed run leaves an entry. Disconnecting
    compares the provider with every entry at about 35 ms each: 206 stale entries made each
    session's end take 8 s. Entries whose process is gone are dropped first."""
    from ape import networks

    from computeshare.cas.cache import alive

    nodes = networks.running_nodes
    if dead := [pid for pid in nodes.process_ids if not alive(pid)]:
        nodes.remove_processes(*dead)


_CALLS: dict = {}


def read_all(*calls) -> list:
    """The answers of view calls `(method, *args)` (e.g. `(token.balanceOf, alice)`), asked
    in one JSON-RPC batch of `eth_call`s at the latest block instead of one request each.

    Each call is selected, converted, encoded and decoded by ape as `method(*args)` would
    be; only the transport is shared. A call the node answers with an error is made again
    on its own through ape, which raises what `method(*args)` raises."""
    from ape.contracts.base import ContractCall, _select_method_abi
    from eth_utils import to_hex
    from hexbytes import HexBytes

    if not calls:
        return []
    provider = calls[0][0].provider
    ecosystem = provider.network.ecosystem
    prepared, requests = [], []
    for method, *args in calls:
        method._validate_is_contract()
        abi = _select_method_abi(method.abis, args, encode_check=method._can_encode)
        call = ContractCall(abi=abi, address=method.contract.address)
        arguments = method.conversion_manager.convert_method_args(abi, args)
        key = (id(provider), call.address, abi.selector)
        if key not in _CALLS:  # the request ape sends for this method, but for its data
            txn = call.serialize_transaction(*arguments)
            txn.chain_id = provider.network.chain_id
            template = provider._prepare_call(txn)
            txn_dict = dict(template[0])  # as ape's _eth_call sends it
            if isinstance(txn_dict.get("type"), int):
                txn_dict["type"] = to_hex(txn_dict["type"])
            txn_dict.pop("chainId", None)
            _CALLS[key] = (txn_dict, template[1:], ecosystem.get_method_selector(abi))
        txn_dict, rest, selector = _CALLS[key]
        data = to_hex(HexBytes(selector + ecosystem.encode_calldata(abi, *arguments)))
        prepared.append(call)
        requests.append(("eth_call", [{**txn_dict, "data": data}, *rest]))
    answers = provider.web3.provider.make_batch_request(requests)
    if not isinstance(answers, list):  # the node refused the batch as a whole
        return [method(*args) for method, *args in calls]
    results = []
    for (method, *args), call, answer in zip(calls, prepared, answers, strict=True):
        if "error" in answer or "result" not in answer:
            results.append(method(*args))
        else:
            results.append(call._decode_returndata(HexBytes(answer["result"])))
    return results

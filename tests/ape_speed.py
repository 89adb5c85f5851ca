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

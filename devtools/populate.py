"""Fill a local node with many real participants quickly, for benchmarks.

Transactions go straight through web3 from addresses anvil impersonates
(`anvil_autoImpersonateAccount`), without waiting for each receipt: they are real
contract calls that change real state, only cheaper to send than through ape.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from eth_utils import keccak, to_checksum_address


def addresses(prefix: str, count: int, start: int = 0) -> list[str]:
    """Deterministic distinct addresses, e.g. addresses("provider", 1000)."""
    return [
        to_checksum_address(keccak(text=f"{prefix}-{i}")[-20:]) for i in range(start, start + count)
    ]


class Populator:
    """Sends many calls from many impersonated accounts and waits for them once."""

    # anvil's pool drops transactions past a few hundred pending ones: wait in batches.
    BATCH = 200

    def __init__(self, provider, *, in_blocks: bool = False):
        """With `in_blocks`, automine is off while populating: each batch is mined as a few
        full blocks instead of one block per transaction (much faster for thousands)."""
        self.web3 = provider.web3
        self._request = provider.make_request
        self._request("anvil_autoImpersonateAccount", [True])
        self._pending: list[bytes] = []
        self.in_blocks = in_blocks
        if in_blocks:
            self._request("evm_setAutomine", [False])

    def close(self) -> None:
        """Waits for what is pending and turns automine back on."""
        self.wait()
        if self.in_blocks:
            self._request("evm_setAutomine", [True])

    def _mine(self) -> None:
        """Mines a block; a full block can take anvil longer than the client's keep-alive,
        so a dropped connection is retried (a block mined twice is harmless)."""
        for attempt in range(5):
            try:
                self._request("evm_mine", [])
                return
            except OSError:  # requests' ConnectionError, a reset
                time.sleep(1 + attempt)
        self._request("evm_mine", [])

    def fund_gas(self, accounts: Iterable[str], wei: int = 10**20) -> None:
        for account in accounts:
            self._request("anvil_setBalance", [account, hex(wei)])

    def send(self, sender: str, contract, method: str, *args) -> None:
        data = getattr(contract, method).encode_input(*args)
        tx = {"from": sender, "to": contract.address, "data": data, "gas": 1_000_000}
        self._pending.append(self.web3.eth.send_transaction(tx))
        if len(self._pending) >= self.BATCH:
            self.wait()

    def wait(self) -> None:
        """Waits for every sent transaction and fails loudly if any reverted."""
        while self.in_blocks and self._pending:  # mine until the pool is empty
            self._mine()
            if int(self._request("txpool_status", [])["pending"], 16) == 0:
                break
        for tx_hash in self._pending:
            receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash)
            if receipt["status"] != 1:
                raise RuntimeError(f"population transaction {tx_hash.hex()} reverted")
        self._pending.clear()

"""How parallel the market's blocks are: read/write sets of N independent users' transactions.

Chains that execute a block's transactions in parallel (Block-STM) re-run a transaction
when it read or wrote a storage slot an earlier one wrote. This tool starts a plain anvil
of its own, deploys the production layout (`deploy_system`), sets up N independent users
(clients with deposits, providers with stake and a device, delegators, token holders), then
mines each operation as ONE block of N transactions and reads every transaction's read set
(`prestateTracer`) and write set (`prestateTracer` in diffMode). Per block it prints the
conflicting pairs, the critical path, the ideal speedup and the hot slots, named from the
compiler's storage layout.

Run: `make parallel` (N = 100) or `make parallel N=20`, i.e.
`python -m devtools.parallel --n 20 [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from eth_utils import keccak, to_checksum_address

from computeshare.constants import ESCROW_SHARDS
from computeshare.jobs import custody_address
from devtools import PROJECT_ROOT

NOTE = """\
What the tracer cannot see, and what is not counted:
- transient storage (TSTORE/TLOAD, e.g. the reentrancy locks) is not in the prestate traces;
- a write that restores a slot's old value within the transaction is absent from diffMode
  (it is still a read, so it is counted as one);
- account balances and nonces: nonces are not counted, nor the sender's balance (its gas)
  and the fee recipient's (every parallel EVM handles those specially); any other balance
  change counts as a write (none here: no operation moves ether); a balance read
  (BALANCE/SELFBALANCE) cannot be told apart from a mere touch, so it is not counted.
A pair i < j conflicts when W_i meets R_j or W_j, or W_j meets R_i; the critical path is the
longest chain of transactions each conflicting with an earlier one in block order; the
ideal speedup is transactions / critical path."""


# ---------------------------------------------------------------- conflicts


Key = tuple[str, int]  # (contract address, lowercase hex; storage slot)


@dataclass
class Block:
    """One measured block: each transaction's read and write sets, in block order."""

    operation: str
    reads: list[set[Key]]
    writes: list[set[Key]]
    names: dict[Key, str] = field(default_factory=dict)


def conflicting_pairs(reads: list[set], writes: list[set]) -> list[tuple[int, int]]:
    """Pairs i < j with W_i ∩ (R_j ∪ W_j) or W_j ∩ R_i non-empty."""
    pairs = []
    for j in range(len(reads)):
        for i in range(j):
            if writes[i] & (reads[j] | writes[j]) or writes[j] & reads[i]:
                pairs.append((i, j))
    return pairs


def critical_path(n: int, pairs: Iterable[tuple[int, int]]) -> int:
    """The longest chain of transactions, each conflicting with an earlier one."""
    earlier: dict[int, list[int]] = {}
    for i, j in pairs:
        earlier.setdefault(j, []).append(i)
    depth = [1] * n
    for j in range(n):
        depth[j] = 1 + max((depth[i] for i in earlier.get(j, [])), default=0)
    return max(depth, default=0)


def summary(reads: list[set], writes: list[set]) -> dict:
    """Conflicting pairs, their rate, the critical path and the ideal speedup."""
    n = len(reads)
    pairs = conflicting_pairs(reads, writes)
    total = n * (n - 1) // 2
    path = critical_path(n, pairs)
    return {
        "transactions": n,
        "pairs": len(pairs),
        "rate": len(pairs) / total if total else 0.0,
        "critical_path": path,
        "speedup": n / path if path else 0.0,
    }


def hot_keys(reads: list[set], writes: list[set], top: int = 3) -> list[tuple[Key, int, int]]:
    """The slots behind conflicts: written by one transaction and touched by another, most
    writers first. Returns (key, writers, transactions touching it)."""
    writers, touched = Counter(), Counter()
    for r, w in zip(reads, writes, strict=True):
        writers.update(w)
        touched.update(r | w)
    hot = [(k, writers[k], touched[k]) for k in writers if touched[k] >= 2]
    hot.sort(key=lambda item: (-item[1], -item[2], item[0]))
    return hot[:top]


# ---------------------------------------------------------------- slot names


def storage_layout(contract: str) -> dict:
    vyper = shutil.which("vyper") or str(Path(sys.executable).with_name("vyper"))
    out = subprocess.run(
        [vyper, "-f", "layout", "-p", str(PROJECT_ROOT), f"contracts/{contract}.vy"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out).get("storage_layout", {})


def _variables(tree: dict, prefix: str = ""):
    for name, entry in tree.items():
        if "slot" in entry and "type" in entry:
            yield prefix + name, entry
        else:
            yield from _variables(entry, f"{prefix}{name}.")


def _key_types(type_: str) -> list[str]:
    """HashMap[address, HashMap[uint256, X]] -> ["address", "uint256"]."""
    keys = []
    while type_.startswith("HashMap["):
        inner = type_[len("HashMap[") : -1]
        key, _, type_ = inner.partition(", ")
        keys.append(key)
    return keys


def _word(value) -> bytes:
    if isinstance(value, bytes):
        return value.rjust(32, b"\0")
    if isinstance(value, str):
        return bytes.fromhex(value[2:]).rjust(32, b"\0")
    return int(value).to_bytes(32, "big")


def mapping_slot(slot: int, key) -> int:
    """Where Vyper keeps `map[key]` for a HashMap at `slot`: keccak256(slot . key)."""
    return int.from_bytes(keccak(_word(slot) + _word(key)), "big")


class SlotNames:
    """Storage slots named from `vyper -f layout`, HashMap keys recomputed from known keys.

    `keys` maps a key type ("address", "uint256", "bytes32") to {value: label}, `own_keys`
    a contract name to more such labels for its maps alone (e.g. proposal ids in the
    Governor); `partners(value, kind)` gives the second-level keys worth trying under a
    first-level key."""

    STRUCT_WORDS = 8  # a HashMap of structs: fields at hash + 0..7

    def __init__(self, contracts: dict[str, str], keys: dict, partners, own_keys=None):
        self.names: dict[Key, str] = {}
        for contract, address in contracts.items():
            where = address.lower()
            own = (own_keys or {}).get(contract, {})
            labels = {kind: {**keys.get(kind, {}), **own.get(kind, {})} for kind in keys}
            for var, entry in _variables(storage_layout(contract)):
                base, types = entry["slot"], _key_types(entry["type"])
                if not types:
                    for k in range(entry.get("n_slots", 1)):
                        self.names[(where, base + k)] = f"{contract}.{var}"
                    continue
                for value, label in labels.get(self._kind(types[0]), {}).items():
                    first = mapping_slot(base, value)
                    if len(types) == 1:
                        self._add(where, first, f"{contract}.{var}[{label}]")
                        continue
                    for value2, label2 in partners(value, self._kind(types[1])).items():
                        name = f"{contract}.{var}[{label}][{label2}]"
                        self._add(where, mapping_slot(first, value2), name)

    @staticmethod
    def _kind(type_: str) -> str:
        return type_ if type_ in ("address", "bytes32") else "uint256"

    def _add(self, where: str, slot: int, name: str) -> None:
        self.names[(where, slot)] = name
        for offset in range(1, self.STRUCT_WORDS):
            self.names.setdefault((where, slot + offset), f"{name}+{offset}")

    def name(self, key: Key, contracts: dict[str, str]) -> str:
        if key in self.names:
            return self.names[key]
        owner = {a.lower(): n for n, a in contracts.items()}.get(key[0], key[0])
        return f"{owner}@{key[1]:#x}"


# ---------------------------------------------------------------- the node


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_anvil(port: int) -> subprocess.Popen:
    """A plain anvil (no --steps-tracing). Blocks hold N transactions of a few million gas
    limit each, so the block gas limit is raised."""
    anvil = shutil.which("anvil")
    if anvil is None:
        raise FileNotFoundError("anvil is not on PATH (make setup installs it in node_modules)")
    node = subprocess.Popen(
        [anvil, "--port", str(port), "--silent", "--gas-limit", "10000000000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    for _ in range(300):
        try:
            request = urllib.request.Request(
                uri, data=body.encode(), headers={"Content-Type": "application/json"}
            )
            urllib.request.urlopen(request, timeout=2).read()
            return node
        except OSError:
            time.sleep(0.1)
    node.kill()
    raise RuntimeError(f"anvil did not answer on {uri}")


# ---------------------------------------------------------------- the market


GAS = 3_000_000


def pair(a: list, b: list) -> list[tuple]:
    return list(zip(a, b, strict=True))


class Market:
    """The production deployment on the connected node, N users per role, and one block
    of N signed transactions per measured operation."""

    def __init__(self, n: int, log=print):
        from ape import accounts, chain, project
        from eth_account import Account

        from computeshare.deploy import deploy_system

        self.n, self.log, self.chain = n, log, chain
        self.request = chain.provider.make_request
        self.web3 = chain.provider.web3
        self.deployer = accounts.test_accounts[0]
        self.cs = deploy_system(project, self.deployer)
        self.contracts = {
            name: str(self.cs.contract(name).address) for name in self.cs.manifest.contracts
        }
        self.keys = {}
        self.users: dict[str, list[str]] = {}
        for role in ("client", "provider", "pooled", "delegator", "holder", "recipient"):
            self.users[role] = []
            for i in range(n):
                account = Account.from_key(keccak(text=f"computeshare-parallel-{role}-{i}"))
                self.keys[account.address] = account
                self.users[role].append(account.address)
        self.blocks: list[Block] = []
        self.jobs: dict[str, bytes] = {}  # job ids by label, for naming
        self.proposals: list[int] = []

    # -- sending

    def _send_unsigned(self, pending: list, sender: str, contract, method: str, *args) -> None:
        from computeshare.governance import encode

        data = encode(contract, method, *args)
        tx = {"from": sender, "to": str(contract.address), "data": data, "gas": GAS}
        pending.append(self.web3.eth.send_transaction(tx))

    def setup(self, calls: list[tuple]) -> list:
        """Unmeasured calls (impersonated senders), mined in a few blocks; their receipts."""
        from devtools.populate import Populator

        pop = Populator(self.chain.provider, in_blocks=True)
        hashes = []
        for start in range(0, len(calls), Populator.BATCH):
            pending: list = []
            for call in calls[start : start + Populator.BATCH]:
                self._send_unsigned(pending, *call)
            pop._pending = list(pending)
            pop.wait()
            hashes += pending
        pop.close()
        return [self.web3.eth.get_transaction_receipt(h) for h in hashes]

    def measure(self, operation: str, calls: list[tuple]) -> list:
        """One block of `calls` (sender, contract, method, *args), signed by the senders;
        records its read and write sets. Returns the receipts, in block order."""
        from computeshare.governance import encode

        base = self.web3.eth.get_block("latest")["baseFeePerGas"]
        chain_id = self.web3.eth.chain_id
        self.request("evm_setAutomine", [False])
        try:
            hashes = []
            for sender, contract, method, *args in calls:
                tx = {
                    "type": 2,
                    "chainId": chain_id,
                    "nonce": self.web3.eth.get_transaction_count(sender, "pending"),
                    "to": str(contract.address),
                    "data": encode(contract, method, *args),
                    "gas": GAS,
                    "maxFeePerGas": 2 * base + 10**9,
                    "maxPriorityFeePerGas": 10**9,
                    "value": 0,
                }
                signed = self.keys[sender].sign_transaction(tx)
                hashes.append(self.web3.eth.send_raw_transaction(signed.raw_transaction))
            self.request("evm_mine", [])
        finally:
            self.request("evm_setAutomine", [True])
        receipts = [self.web3.eth.get_transaction_receipt(h) for h in hashes]
        if len({r["blockNumber"] for r in receipts}) != 1:
            raise RuntimeError(f"{operation}: the transactions did not fit in one block")
        failed = [r["transactionHash"].hex() for r in receipts if r["status"] != 1]
        if failed:
            raise RuntimeError(
                f"{operation}: {len(failed)} transactions reverted, e.g. {failed[0]}"
            )
        receipts.sort(key=lambda r: r["transactionIndex"])
        coinbase = self.web3.eth.get_block(receipts[0]["blockNumber"])["miner"].lower()
        reads, writes = [], []
        for receipt in receipts:
            r, w = self.trace(receipt["transactionHash"], receipt["from"].lower(), coinbase)
            reads.append(r)
            writes.append(w)
        self.blocks.append(Block(operation, reads, writes))
        self.log(
            f"  {operation}: {len(receipts)} transactions in block {receipts[0]['blockNumber']}"
        )
        return receipts

    def trace(self, tx_hash, sender: str, coinbase: str) -> tuple[set, set]:
        """Read set (plain prestate: every slot accessed) and write set (diffMode: every slot
        whose value changed). A changed balance counts as a ("balance", address) write, except
        the sender's (gas) and the fee recipient's; nonces are left out."""
        tx = "0x" + bytes(tx_hash).hex().removeprefix("0x")
        plain = self.request("debug_traceTransaction", [tx, {"tracer": "prestateTracer"}])
        diff = self.request(
            "debug_traceTransaction",
            [tx, {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}}],
        )
        reads: set = set()
        for address, account in plain.items():
            for slot in account.get("storage") or {}:
                reads.add((address.lower(), int(slot, 16)))
        writes: set = set()
        pre, post = diff["pre"], diff["post"]
        for side in (pre, post):
            for address, account in side.items():
                for slot in account.get("storage") or {}:
                    writes.add((address.lower(), int(slot, 16)))
        for address, account in post.items():
            changed = account.get("balance", None) != pre.get(address, {}).get("balance")
            if "balance" in account and changed and address.lower() not in (coinbase, sender):
                writes.add(("balance", int(address, 16)))
        reads |= {k for k in writes if k[0] != "balance"}
        return reads, writes

    # -- the users and the operations

    def events(self, receipts, name: str) -> list:
        """JobEscrow's `name` events emitted in the blocks of these receipts, decoded."""
        abi = getattr(self.cs.escrow, name).abi
        numbers = [r["blockNumber"] for r in receipts]
        raw = self.request(
            "eth_getLogs",
            [
                {
                    "address": str(self.cs.escrow.address),
                    "fromBlock": hex(min(numbers)),
                    "toBlock": hex(max(numbers)),
                    "topics": ["0x" + keccak(text=abi.selector).hex()],
                }
            ],
        )
        return list(self.chain.provider.network.ecosystem.decode_logs(raw, abi))

    def _terms_in(self, receipts) -> dict[str, tuple]:
        """JobPosted terms of these receipts, by client."""
        from computeshare.jobs import terms_tuple

        found = {}
        for log in self.events(receipts, "JobPosted"):
            terms = terms_tuple(log.event_arguments["terms"])
            found[terms.client] = terms
        return found

    def run(self) -> list[Block]:
        from computeshare.constants import TOKEN, Support
        from computeshare.governance import call, propose
        from computeshare.jobs import commitment, job_id_of
        from computeshare.params import parameter
        from computeshare.sandbox import RunResult
        from computeshare.sandbox import keccak as hash_output
        from computeshare.specs import device_spec, job_requirements

        cs, me, u = self.cs, self.deployer.address, self.users
        clients, providers, pooled = u["client"], u["provider"], u["pooled"]
        delegators, holders, recipients = u["delegator"], u["holder"], u["recipient"]
        n, big = self.n, 2**256 - 1
        spec = b'{"workload": "sha256-chain", "input": {"seed": "parallel", "rounds": 10}}'
        reqs, price, collateral = job_requirements(), 10 * TOKEN, 20 * TOKEN
        device = device_spec(max_concurrent_jobs=16)
        good, salt = b"\xaa" * 32, b"\x5a" * 32
        result = RunResult(0, 4_000, b"parallel output")

        self.log(f"setting up {n} users per role")
        everyone = [a for role in u.values() for a in role]
        for who in everyone:
            self.request("anvil_setBalance", [who, hex(10**22)])
        calls = [(me, cs.token, "transfer", a, 100_000 * TOKEN) for a in everyone]
        calls.append((me, cs.token, "delegate", me))
        self.setup(calls)
        calls = []
        for c in clients:
            calls += [(c, cs.token, "approve", cs.escrow.address, big)]
            calls += [(c, cs.escrow, "deposit", 10_000 * TOKEN)]
        for p in providers + pooled:
            calls += [(p, cs.token, "approve", cs.staking.address, big)]
            calls += [(p, cs.staking, "stake", 10_000 * TOKEN)]
            calls += [(p, cs.registry, "register", device, "ipfs://device")]
        # The pooled providers share income with their delegators (10%, set before any
        # delegator joins, so at once): settlement then moves the cut into Staking.
        calls += [(q, cs.staking, "set_delegator_cut", 1_000) for q in pooled]
        for d in delegators:
            calls += [(d, cs.token, "approve", cs.staking.address, big)]
        for h in holders:
            calls += [(h, cs.token, "delegate", h)]
        self.setup(calls)

        self.log("measuring")
        self.measure("deposit", [(c, cs.escrow, "deposit", 100 * TOKEN) for c in clients])
        self.measure("withdraw", [(c, cs.escrow, "withdraw", TOKEN) for c in clients])
        self.measure("stake", [(p, cs.staking, "stake", 100 * TOKEN) for p in providers])
        self.measure(
            "delegate",
            [
                (d, cs.staking, "delegate_to", q, 1_000 * TOKEN, 0)
                for d, q in pair(delegators, pooled)
            ],
        )
        # The delegations warm up, then join their pools (set-up, not measured).
        self.request("evm_increaseTime", [cs.staking.parameter(7)])  # Staking's WARMUP
        self.setup([(d, cs.staking, "activate", q, d) for d, q in pair(delegators, pooled)])
        self.measure(
            "token transfer",
            [(h, cs.token, "transfer", r, TOKEN) for h, r in pair(holders, recipients)],
        )

        def deadline():
            return self.chain.pending_timestamp + 5 * 86_400

        # k = 1 jobs served by providers without delegators: every step measured.
        posted = self.measure(
            "post (k=1)",
            [(c, cs.escrow, "post", spec, reqs, price, 1, deadline(), collateral) for c in clients],
        )
        single = self._terms_in(posted)
        terms = [single[c] for c in clients]
        self._label_jobs(terms, "job of client")
        self.measure(
            "accept (k=1)", [(p, cs.escrow, "accept", t, 0) for p, t in pair(providers, terms)]
        )
        self.measure(
            "commit (k=1)",
            [
                (p, cs.escrow, "commit", t, 0, 0, commitment(job_id_of(t), p, good, salt))
                for p, t in pair(providers, terms)
            ],
        )
        self.measure(
            "reveal (k=1)",
            [(p, cs.escrow, "reveal", t, 0, 0, good, salt) for p, t in pair(providers, terms)],
        )

        # k = 1 jobs served by the pooled providers (they have delegators): submit measured.
        posted = self.setup(
            [(c, cs.escrow, "post", spec, reqs, price, 1, deadline(), collateral) for c in clients]
        )
        pooled_terms = [self._terms_in(posted)[c] for c in clients]
        self._label_jobs(pooled_terms, "pooled job of client")
        self.setup([(q, cs.escrow, "accept", t, 0) for q, t in pair(pooled, pooled_terms)])
        self.measure(
            "submit (k=1)",
            [
                (q, cs.escrow, "submit", t, 0, result.status, result.fuel,
                 hash_output(result.output), result.output)
                for q, t in pair(pooled, pooled_terms)
            ],
        )  # fmt: skip

        # k = 3 jobs: N/3 jobs, each served by three of the providers.
        triples = n // 3
        posted = self.setup(
            [
                (c, cs.escrow, "post", spec, reqs, price, 3, deadline(), collateral)
                for c in clients[:triples]
            ]
        )
        found = self._terms_in(posted)
        triple_terms = [found[c] for c in clients[:triples]]
        self._label_jobs(triple_terms, "k=3 job of client")
        served = [(providers[3 * j + r], triple_terms[j]) for j in range(triples) for r in range(3)]
        accepted = self.measure("accept (k=3)", [(p, cs.escrow, "accept", t, 0) for p, t in served])
        slots = {}
        for log in self.events(accepted, "ReplicaAccepted"):
            args = log.event_arguments
            slots[(to_checksum_address(args["provider"]), bytes(args["job_id"]))] = args["slot"]
        slot = {(p, t): slots[(p, job_id_of(t))] for p, t in served}
        self.measure(
            "commit (k=3)",
            [
                (p, cs.escrow, "commit", t, slot[(p, t)], 0,
                 commitment(job_id_of(t), p, good, salt))
                for p, t in served
            ],
        )  # fmt: skip
        self.measure(
            "reveal (k=3)",
            [(p, cs.escrow, "reveal", t, slot[(p, t)], 0, good, salt) for p, t in served],
        )

        # One proposal, N holders voting on it.
        action = call(
            cs.escrow, "set_parameter", parameter("JobEscrow", "PROTOCOL_FEE_BPS").key, 100
        )
        proposal = propose(cs.governor, self.deployer, [action], "parallel: one proposal")
        self.proposals.append(proposal)
        self.request("evm_increaseTime", [cs.governor.votingDelay() + 1])
        self.request("evm_mine", [])
        self.measure(
            "castVote", [(h, cs.governor, "castVote", proposal, Support.FOR) for h in holders]
        )

        # Past the challenge windows: settle.
        self.request("evm_increaseTime", [2 * 86_400])
        self.request("evm_mine", [])
        self.measure(
            "finalize k=1, no delegators",
            [
                (p, cs.escrow, "finalize", t, (p, 0, good))
                for p, t in pair(providers, terms)
            ],
        )  # fmt: skip
        self.measure(
            "finalize k=1, delegators",
            [
                (q, cs.escrow, "finalize", t, (q, 0, result.digest()))
                for q, t in pair(pooled, pooled_terms)
            ],
        )  # fmt: skip
        zero = ("0x" + "00" * 20, 0, b"\0" * 32)
        self.measure(
            f"finalize k=3 ({triples} jobs)",
            [(c, cs.escrow, "finalize", t, zero) for c, t in pair(clients[:triples], triple_terms)],
        )

        # Providers take their pay out of JobEscrow. It sits in the shards of the clients
        # that paid them: the client library names such a shard (`payout_shard`, from the
        # provider's settled jobs), so no two withdrawals write one balance word.
        def payout(p: str) -> tuple:
            amount = cs.escrow.balanceOf(p)
            shard = cs.payout_shard(p, amount)
            if shard is None:  # its own shard holds the amount
                return (p, cs.escrow, "withdraw", amount)
            return (p, cs.escrow, "withdraw_from_shard", amount, shard)

        self.measure("withdraw earnings", [payout(p) for p in providers])

        # Stake leaving, from pools whose delegators' income JobEscrow still holds.
        self.measure(
            "request thaw", [(p, cs.staking, "request_thaw", 100 * TOKEN) for p in providers]
        )
        shares = [cs.staking.delegation(q, d).shares for d, q in pair(delegators, pooled)]
        self.measure(
            "undelegate",
            [
                (d, cs.staking, "undelegate", q, s)
                for (d, q), s in pair(pair(delegators, pooled), shares)
            ],
        )
        self.request("evm_increaseTime", [cs.staking.thawing_period() + 1])
        self.request("evm_mine", [])
        self.measure("withdraw stake", [(p, cs.staking, "withdraw") for p in providers])
        self.measure(
            "withdraw delegation",
            [(d, cs.staking, "withdraw_delegation", q) for d, q in pair(delegators, pooled)],
        )
        return self.blocks

    def _label_jobs(self, terms: list, label: str) -> None:
        from computeshare.jobs import job_id_of

        for i, t in enumerate(terms):
            self.jobs[f"{label} {i}"] = job_id_of(t)

    # -- naming

    def slot_names(self) -> SlotNames:
        labels = {"0x" + "00" * 20: "0 (supply)", self.deployer.address: "deployer"}
        labels.update({a: name for name, a in self.contracts.items()})
        index_of = {}
        for role, addresses in self.users.items():
            for i, a in enumerate(addresses):
                labels[a] = f"{role} {i}"
                index_of[a] = i
        # The custody accounts ComputeToken keeps for each provider's pool in Staking and
        # for JobEscrow's deposit shards, derived here (no call per account).
        vault, escrow = self.contracts["Staking"], self.contracts["JobEscrow"]
        for role in ("provider", "pooled"):
            for i, a in enumerate(self.users.get(role, [])):
                labels[custody_address(vault, a)] = f"pool of {role} {i}"
        for shard in range(ESCROW_SHARDS):
            labels[custody_address(escrow, shard)] = f"JobEscrow shard {shard}"
        addresses = {to_checksum_address(a): label for a, label in labels.items()}
        uints = {}
        for a, label in addresses.items():
            for k in range(4):
                uints[(int(a, 16) << 32) | k] = f"{label} #{k}"
        uints.update({k: str(k) for k in range(16)})
        words = {job: label for label, job in self.jobs.items()}
        for a, label in addresses.items():
            device = keccak(_word(a) + _word(0))
            words[device] = f"device of {label}"
        keys = {"address": addresses, "uint256": uints, "bytes32": words}
        contract_keys = {to_checksum_address(a): n for n, a in self.contracts.items()}

        def partners(value, kind: str) -> dict:
            if kind == "uint256":
                return {**{k: str(k) for k in range(4)}, **{p: "proposal" for p in self.proposals}}
            if kind == "bytes32":
                return {b"\xaa" * 32: "result"}
            out = dict(contract_keys)
            i = index_of.get(value) if isinstance(value, str) else None
            if i is not None:
                out.update({users[i]: f"{role} {i}" for role, users in self.users.items()})
            return out

        proposals = {"uint256": {p: f"proposal 0x{int(p):064x}"[:21] for p in self.proposals}}
        return SlotNames(self.contracts, keys, partners, {"Governor": proposals})


# ---------------------------------------------------------------- report


def report(blocks: list[Block], names: SlotNames, contracts: dict[str, str]) -> list[dict]:
    rows = []
    for block in blocks:
        row = {"operation": block.operation, **summary(block.reads, block.writes)}
        row["hot"] = [
            f"{'balance of ' + hex(k[1]) if k[0] == 'balance' else names.name(k, contracts)}"
            f" (w{writers}/{touched})"
            for k, writers, touched in hot_keys(block.reads, block.writes)
        ]
        row["hot_names"] = [
            names.name(k, contracts) for k, _, _ in hot_keys(block.reads, block.writes)
        ]
        rows.append(row)
    return rows


def format_report(rows: list[dict]) -> str:
    from computeshare.report import format_table

    table = [
        {
            "operation": r["operation"],
            "txs": r["transactions"],
            "conflicting pairs": f"{r['pairs']:,}",
            "rate": f"{100 * r['rate']:.1f}%",
            "critical path": r["critical_path"],
            "ideal speedup": f"{r['speedup']:.1f}x",
            "hot slots (writers/touching)": ", ".join(r["hot"][:2]) or "-",
        }
        for r in rows
    ]
    hot = "hot slots (writers/touching)"
    width = max(len(hot), *(len(row[hot]) for row in table))
    for row in table:  # left-aligned: format_table right-aligns every column but the first
        row[hot] = row[hot].ljust(width)
    lines = format_table(table, list(table[0])).splitlines()
    return "\n".join(line.rstrip() for line in lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="transactions per block")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.n < 3:
        parser.error("--n must be at least 3")

    from ape import networks
    from ape.logging import logger

    logger.set_level("ERROR")  # ape's deployment and confirmation lines
    port = free_port()
    node = start_anvil(port)
    began = time.perf_counter()
    try:
        with networks.parse_network_choice(f"http://127.0.0.1:{port}"):
            market = Market(args.n, log=lambda m: print(m, file=sys.stderr))
            blocks = market.run()
            rows = report(blocks, market.slot_names(), market.contracts)
    finally:
        node.terminate()
        node.wait(timeout=30)
    print(f"\nOne block per operation, N = {args.n} independent users\n")
    print(format_report(rows))
    print()
    print(NOTE)
    print(f"\n({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

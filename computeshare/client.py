"""One connected deployment: for Python dApps, the CLI, the agent, scripts and tests.

    from computeshare.client import ComputeShare
    cs = ComputeShare.from_manifest("deployments/sepolia-11155111.json", account=me)
    device = cs.register_device(device_spec(), "ipfs://...")
    cs.stake(10_000 * TOKEN)
    job = cs.post_job(encode_spec("sha256-chain", {"seed": "x", "rounds": 1000}),
                      job_requirements(), price=10**18, replicas=3, duration=3600)
    for status in cs.watch_job(job): ...

Contracts are built from the ABIs in the manifest, so no compiler or project is needed;
`computeshare.deploy.deploy_suite` / `deploy_system` return the same class over the
contracts they deployed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ape import Contract, chain

from computeshare.constants import MAX_SWEEP, MAX_UINT, JobStatus, ReplicaStatus, label
from computeshare.jobs import JobBook
from computeshare.manifest import OWNED, Manifest, network_manifest_path
from computeshare.metering import R_FLOOR
from computeshare.results import ResultError, agreed_results, fetch_result
from computeshare.sandbox import RunResult
from computeshare.workloads import COMMIT_SECONDS, decode_spec, run_seconds

if TYPE_CHECKING:
    from computeshare.governance import Proposal


class ClientError(Exception):
    """A request the client refuses before sending, e.g. a missing manifest."""


class _Deployed:
    """A contract of the deployment as an attribute (`cs.escrow`); None if not deployed."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, cs: ComputeShare | None, owner=None):
        return self if cs is None else cs.contract(self.name)


class ComputeShare:
    """One connected deployment, seen from one account (or read-only without one): the
    contracts by role (`token`, `staking`, `registry`, `escrow`, `escrow_view`, `offers`,
    and `timelock` and `governor` when governed), its jobs by id (`jobs`), and the calls a
    provider, a client or a voter makes. Tests, benchmarks and scripts get one from
    `computeshare.deploy.deploy_suite` / `deploy_system`; users from a manifest."""

    token = _Deployed("ComputeToken")
    staking = _Deployed("Staking")
    registry = _Deployed("DeviceRegistry")
    escrow = _Deployed("JobEscrow")
    escrow_view = _Deployed("JobEscrowView")
    offers = _Deployed("OfferBook")
    governor = _Deployed("Governor")
    timelock = _Deployed("Timelock")

    def __init__(self, manifest: Manifest, account=None, contracts: dict[str, Any] | None = None):
        self.manifest = manifest if isinstance(manifest, Manifest) else Manifest(None, manifest)
        self.account = account
        self._contracts: dict[str, Any] = dict(contracts or {})
        self._jobs: JobBook | None = None
        self.index = None  # an EventIndex once `open_index` is called

    @property
    def path(self) -> Path | None:
        """Where the manifest was read from, if from a file."""
        return self.manifest.path

    @classmethod
    def from_contracts(cls, contracts: dict[str, Any], account=None) -> ComputeShare:
        """A deployment from contract instances by name (e.g. `ape`'s project contracts)."""
        entries = {name: {"address": str(c.address)} for name, c in contracts.items()}
        return cls(Manifest(None, {"contracts": entries}), account, contracts)

    @classmethod
    def from_manifest(cls, path: Path | str, account=None) -> ComputeShare:
        path = Path(path)
        if not path.exists():
            raise ClientError(f"no deployment manifest at {path}: run `ape run deploy` first")
        manifest = Manifest.open(path)
        if not manifest.complete:
            raise ClientError(f"deployment in {path} is incomplete: re-run `ape run deploy`")
        if manifest.chain_id != chain.chain_id:
            raise ClientError(
                f"{path} is for chain {manifest.chain_id}, connected to {chain.chain_id}"
            )
        return cls(manifest, account)

    @classmethod
    def connected(cls, account=None, directory: Path | None = None) -> ComputeShare:
        """The deployment on the connected network, from <deployments>/<network>-<chain id>
        (see `computeshare.manifest`). A fork without a deployment of its own
        (`sepolia-fork`) uses its upstream's."""
        path = network_manifest_path(chain.provider.network.name, chain.chain_id, directory)
        return cls.from_manifest(path, account)

    def as_account(self, account) -> ComputeShare:
        """The same deployment seen from `account` (contracts and job terms shared)."""
        other = type(self)(self.manifest, account)
        other._contracts, other._jobs, other.index = self._contracts, self._jobs, self.index
        return other

    def contract(self, name: str):
        """The deployment's contract `name` (e.g. "JobEscrow"); None if it has none."""
        if name not in self._contracts:
            if not self.manifest.has(name):
                return None
            address, abi = self.manifest.address(name), self.manifest.abi(name)
            self._contracts[name] = Contract(address, abi=abi)
        return self._contracts[name]

    def owned(self) -> list:
        """The contracts whose owner must be the timelock after hand-over."""
        return [self.contract(name) for name in OWNED]

    def open_index(self, where: str | Path | None = None, **options):
        """Opens (creating it if needed) the event index of this deployment: `where` is a
        file or SQLAlchemy URL, by default `<manifest>.sqlite` next to the manifest. From
        then on job look-ups read the index."""
        from computeshare.index import EventIndex  # SQLAlchemy only when an index is used

        if where is None:
            if self.path is None:
                raise ClientError("no index file: this deployment was not read from a file")
            where = EventIndex.default_path(self.path)
        self.index = EventIndex.open(where, self.manifest, chain.provider.web3, **options)
        self.jobs.index = self.index
        return self.index

    def _sender(self):
        if self.account is None:
            raise ClientError("this action needs an account (--account)")
        return self.account

    def _approve(self, spender, amount: int) -> None:
        me = self._sender()
        if self.token.allowance(me, spender) < amount:
            self.token.approve(spender, MAX_UINT, sender=me)

    # -- providers

    def register_device(self, spec: dict, metadata_uri: str) -> bytes:
        receipt = self.registry.register(spec, metadata_uri, sender=self._sender())
        return bytes(receipt.return_value)

    def stake(self, amount: int):
        self._approve(self.staking, amount)
        return self.staking.stake(amount, sender=self._sender())

    def devices_of(self, owner: str) -> list[tuple[bytes, Any]]:
        return [
            (device_id, self.registry.device(device_id))
            for device_id in (
                bytes(self.registry.device_id_of(owner, n))
                for n in range(self.registry.device_count(owner))
            )
        ]

    # -- clients

    def deposit(self, amount: int):
        self._approve(self.escrow, amount)
        return self.escrow.deposit(amount, sender=self._sender())

    def payout_shard(self, account: str, amount: int) -> int | None:
        """The deposit shard a withdrawal of `amount` by `account` should take its tokens
        from, when JobEscrow keeps deposits in shards: None when the account's own shard
        holds the amount (plain `withdraw`), else the shard of the most recent client
        that paid it and holds the amount, else one of the shards that hold it, picked
        by the account's address (so different withdrawers spread over different
        shards), else None (JobEscrow gathers from several). One call reads every
        shard; the payers come from three `eth_getLogs` requests."""
        from computeshare.jobs import deposit_shard, payers_of

        balances = list(self.escrow_view.shard_balances())
        if not balances or balances[deposit_shard(account)] >= amount:
            return None
        for payer in payers_of(self.escrow, account, self.jobs.start_block):
            if balances[deposit_shard(payer)] >= amount:
                return deposit_shard(payer)
        holding = [shard for shard, balance in enumerate(balances) if balance >= amount]
        if not holding:
            return None
        return holding[int(account, 16) % len(holding)]

    def withdrawal(self, account: str, amount: int) -> tuple:
        """The JobEscrow method and arguments of a withdrawal of `amount` by `account`,
        from the shard `payout_shard` picks (for callers that send it themselves)."""
        shard = self.payout_shard(account, amount)
        if shard is None:
            return self.escrow.withdraw, (amount,)
        return self.escrow.withdraw_from_shard, (amount, shard)

    def withdraw(self, amount: int):
        """Withdraws `amount` of the caller's JobEscrow balance (see `withdrawal`)."""
        me = self._sender()
        method, args = self.withdrawal(me.address, amount)
        return method(*args, sender=me)

    def post_job(
        self,
        spec: bytes,
        requirements: dict,
        *,
        price: int,
        replicas: int,
        duration: int,
        collateral: int | None = None,
    ) -> bytes:
        """Posts a job (depositing what the balance lacks); returns its id."""
        me = self._sender()
        job = decode_spec(spec)  # the checks every provider makes: refuse a doomed spec here
        needed = run_seconds(job.fuel) + COMMIT_SECONDS
        if duration < needed:
            raise ClientError(
                f"a fuel limit of {job.fuel:,} needs a duration of at least {needed:,.0f} s"
                " (its run at the floor R_FLOOR, then the commitment): providers would decline"
            )
        if job.fuel > R_FLOOR * requirements.get("compute_seconds", 0):
            raise ClientError(
                f"a fuel limit of {job.fuel:,} needs compute_seconds of at least"
                f" {-(-job.fuel // R_FLOOR):,} (at the floor R_FLOOR): providers would decline"
            )
        collateral = price if collateral is None else collateral
        missing = price * replicas - self.escrow.balanceOf(me)
        if missing > 0:
            self.deposit(missing)
        deadline = chain.pending_timestamp + duration
        receipt = self.escrow.post(
            spec, requirements, price, replicas, deadline, collateral, sender=me
        )
        return bytes(receipt.return_value)

    @property
    def jobs(self) -> JobBook:
        """JobEscrow's job calls by job id; terms are read from the escrow's events."""
        if self._jobs is None:
            start = self.manifest.block("JobEscrow")
            self._jobs = JobBook(self.escrow, self.escrow_view, start_block=start)
        return self._jobs

    def job(self, job_id: bytes) -> dict:
        """The job's terms and state, with status and replica states named."""
        view = vars(self.jobs.view(job_id))
        view["status_name"] = label(JobStatus, view["status"])
        view["replica_states"] = [
            label(ReplicaStatus, self.escrow_view.assignment(job_id, slot).status)
            for slot in range(view["accepted"])
        ]
        return view

    def watch_job(self, job_id: bytes, poll: float = 1.0, timeout: float = 600) -> Iterator[dict]:
        """Yields the job's view whenever it changes, until it is final or `timeout` passes."""
        last, end = None, time.monotonic() + timeout
        while time.monotonic() < end:
            view = self.job(job_id)
            key = (view["status"], tuple(view["replica_states"]))
            if key != last:
                last = key
                yield view
            if view["status"] in (JobStatus.FINALIZED, JobStatus.CANCELLED):
                return
            time.sleep(poll)

    def result(
        self, job_id: bytes, endpoints: list[str] | None = None, private_key: bytes | None = None
    ) -> RunResult:
        """The job's whole result (status, fuel, output), checked against the chain: the
        settled result once final, else an agreed revealed one (`agreed_results`). A short
        k = 1 output is read from its `ResultSubmitted` event; any other from a provider's
        agent. Endpoints default to the http(s) metadata URIs of the devices that revealed;
        `private_key` reads an output encrypted to the spec's `encrypt_to`."""
        job_id = bytes(job_id)
        escrow, height = self.escrow, chain.blocks.height + 1
        start = self.jobs.start_block
        topics = {"job_id": job_id}
        settled = list(escrow.JobSettled.range(start, height, search_topics=topics))
        revealed = list(escrow.ResultRevealed.range(start, height, search_topics=topics))
        agreed = agreed_results(
            bytes(settled[0].result_hash) if settled else None,
            [bytes(event.result_hash) for event in revealed],
            self.jobs.terms(job_id).replicas,
        )
        for event in escrow.ResultSubmitted.range(start, height, search_topics=topics):
            on_chain = RunResult(event.status, event.fuel, bytes(event.output))
            if event.output and on_chain.digest() in agreed:
                return on_chain  # a short k = 1 output travels in its event
        if not endpoints:
            # `provider` is shadowed on ape's log objects: read it from the event arguments.
            providers = {event.event_arguments["provider"] for event in revealed}
            accepted = escrow.ReplicaAccepted.range(start, height, search_topics=topics)
            uris = [
                self.registry.device(bytes(event.device_id)).metadata_uri
                for event in accepted
                if event.event_arguments["provider"] in providers
            ]
            endpoints = [uri for uri in uris if uri.startswith(("http://", "https://"))]
        problems = []
        for endpoint in endpoints:
            try:
                return fetch_result(endpoint, job_id, agreed, private_key)
            except ResultError as error:
                problems.append(str(error))
        raise ResultError("; ".join(problems) or "no provider of this job serves results")

    def sweep_fees(self) -> int:
        """Sweeps the protocol fees every device accrued to the treasury (anyone may), up to
        `MAX_SWEEP` devices a transaction; returns the amount swept."""
        from computeshare.jobs import devices_with_fees

        me = self._sender()
        devices = devices_with_fees(self.escrow, self.jobs.start_block)
        return sum(
            self.escrow.sweep_fees(devices[i : i + MAX_SWEEP], sender=me).return_value
            for i in range(0, len(devices), MAX_SWEEP)
        )

    # -- governance

    def proposal(self, actions, description: str, *, reserve: bool = True) -> Proposal:
        """The proposal this account would make of `actions`: its description reserved to
        the account unless `reserve=False` (`computeshare.governance.reserved`: nobody else
        can take its id first and cancel it), its id computed here. Raises ClientError if
        that proposal already exists."""
        from computeshare.governance import Proposal, reserved

        proposal = Proposal(actions, reserved(description, self._sender(), reserve=reserve))
        if self.governor.proposalSnapshot(proposal) != 0:
            raise ClientError(
                f"proposal {int(proposal)} already exists (same actions and description)"
            )
        return proposal

    def propose(self, actions, description: str, *, reserve: bool = True) -> Proposal:
        """Proposes `actions` from this account, reserved to it unless `reserve=False`;
        returns the proposal (its id, with the actions and the description sent)."""
        proposal = self.proposal(actions, description, reserve=reserve)
        self.governor.propose(*proposal.propose_args(), sender=self._sender())
        return proposal

    def vote(self, proposal_id: int, support: int, reason: str = ""):
        me = self._sender()
        if reason:
            return self.governor.castVoteWithReason(proposal_id, support, reason, sender=me)
        return self.governor.castVote(proposal_id, support, sender=me)


ALIASES = {alias: d.name for alias, d in vars(ComputeShare).items() if isinstance(d, _Deployed)}

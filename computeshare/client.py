"""A small client API over a deployment manifest, for Python dApps, the CLI and the agent.

    from computeshare.client import ComputeShare
    cs = ComputeShare.from_manifest("deployments/sepolia-11155111.json", account=me)
    device = cs.register_device(device_spec(), "ipfs://...")
    cs.stake(10_000 * TOKEN)
    job = cs.post_job(encode_spec("sha256-chain", {"seed": "x", "rounds": 1000}),
                      job_requirements(), price=10**18, replicas=3, duration=3600)
    for status in cs.watch_job(job): ...

Contracts are built from the ABIs in the manifest, so no compiler or project is needed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ape import Contract, chain

from computeshare.deploy import DEPLOYMENTS, manifest_path
from computeshare.jobs import STATUS_CANCELLED, STATUS_FINALIZED, JobBook
from computeshare.results import ResultError, agreed_results, fetch_result
from computeshare.sandbox import RunResult
from computeshare.workloads import decode_spec

STATUS_NAMES = {0: "none", 1: "open", 2: "disputed", 3: "finalized", 4: "cancelled"}
REPLICA_NAMES = {0: "none", 1: "accepted", 2: "committed", 3: "revealed"}
ALIASES = {
    "token": "ComputeToken",
    "staking": "Staking",
    "registry": "DeviceRegistry",
    "escrow": "JobEscrow",
    "escrow_view": "JobEscrowView",
    "offers": "OfferBook",
    "governor": "Governor",
    "timelock": "Timelock",
}
MAX_UINT = 2**256 - 1


class ClientError(Exception):
    """A request the client refuses before sending, e.g. a missing manifest."""


class ComputeShare:
    """One deployment, seen from one account (or read-only without one)."""

    def __init__(self, manifest: dict, account=None, path: Path | None = None):
        self.manifest = manifest
        self.account = account
        self.path = path  # where the manifest was read from, if from a file
        self._contracts: dict[str, Any] = {}
        self._jobs: JobBook | None = None
        self.index = None  # an EventIndex once `open_index` is called

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

    @classmethod
    def from_manifest(cls, path: Path | str, account=None) -> ComputeShare:
        path = Path(path)
        if not path.exists():
            raise ClientError(f"no deployment manifest at {path}: run `ape run deploy` first")
        manifest = json.loads(path.read_text())
        if not manifest.get("complete"):
            raise ClientError(f"deployment in {path} is incomplete: re-run `ape run deploy`")
        if manifest.get("chain_id") != chain.chain_id:
            raise ClientError(
                f"{path} is for chain {manifest.get('chain_id')}, connected to {chain.chain_id}"
            )
        return cls(manifest, account, path)

    @classmethod
    def connected(cls, account=None, directory: Path = DEPLOYMENTS) -> ComputeShare:
        """The deployment on the connected network, from deployments/<network>-<chain id>.
        A fork without a deployment of its own (`sepolia-fork`) uses its upstream's."""
        network = chain.provider.network.name
        path = manifest_path(network, chain.chain_id, directory)
        upstream = manifest_path(network.removesuffix("-fork"), chain.chain_id, directory)
        return cls.from_manifest(path if path.exists() else upstream, account)

    def __getattr__(self, alias: str):
        if alias not in ALIASES:
            raise AttributeError(alias)
        name = ALIASES[alias]
        if name not in self._contracts:
            entry = self.manifest["contracts"][name]
            self._contracts[name] = Contract(entry["address"], abi=self.manifest["abis"][name])
        return self._contracts[name]

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
        decode_spec(spec)  # the checks every provider makes: refuse a doomed spec here
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
            start = self.manifest["contracts"]["JobEscrow"].get("block") or 0
            self._jobs = JobBook(self.escrow, self.escrow_view, start_block=start)
        return self._jobs

    def job(self, job_id: bytes) -> dict:
        """The job's terms and state, with status and replica states named."""
        view = vars(self.jobs.view(job_id))
        view["status_name"] = STATUS_NAMES.get(view["status"], str(view["status"]))
        view["replica_states"] = [
            REPLICA_NAMES.get(self.escrow_view.assignment(job_id, slot).status, "?")
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
            if view["status"] in (STATUS_FINALIZED, STATUS_CANCELLED):
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
            self.jobs.terms(job_id)[6],
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

    # -- governance

    def vote(self, proposal_id: int, support: int, reason: str = ""):
        me = self._sender()
        if reason:
            return self.governor.castVoteWithReason(proposal_id, support, reason, sender=me)
        return self.governor.castVote(proposal_id, support, sender=me)

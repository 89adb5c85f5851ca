"""`computeshare show`: read-only tables, read from events and views."""

from __future__ import annotations

import click

from computeshare.cli.common import command, connect, full_option, short_id, show, step, table


@click.group(name="show")
def show_group():
    """Read-only tables: devices, jobs, pools, proposals."""


def _events(contract, name: str, since: int):
    return getattr(contract, name).range(since, contract.chain_manager.blocks.height + 1)


def _start(cs, since: int | None) -> int:
    return since if since is not None else cs.manifest["contracts"]["JobEscrow"]["block"]


since_option = click.option("--since", type=click.IntRange(0), help="first block to read")


@command(show_group, "devices", signer=False)
@since_option
@full_option
def show_devices(manifest, since, full):
    """Every registered device with its spec, status and record."""
    cs = connect(manifest)
    rows = []
    with step("reading devices"):
        for event in _events(cs.registry, "DeviceRegistered", _start(cs, since)):
            device = cs.registry.device(event.device_id)
            record = cs.escrow_view.device_record(event.device_id)
            rows.append(
                {
                    "device": short_id(event.device_id, full),
                    "owner": device.owner if full else device.owner[:10],
                    "status": {1: "active", 2: "paused", 3: "retired"}.get(device.status, "?"),
                    "cpus": device.spec.cpu_cores,
                    "gpus": device.spec.gpu_count,
                    "region": device.spec.region,
                    "running": record.running,
                    "done": record.completed,
                    "failed": record.failed,
                    "slashed": record.slashed,
                }
            )
    table(rows, list(rows[0]) if rows else ["device"])


@command(show_group, "jobs", signer=False)
@since_option
@full_option
def show_jobs(manifest, since, full):
    """Every posted job with its status and replicas."""
    cs = connect(manifest)
    rows = []
    with step("reading jobs"):
        for event in _events(cs.escrow, "JobPosted", _start(cs, since)):
            view = cs.job(cs.jobs.remember(event.terms))
            rows.append(
                {
                    "job": short_id(event.job_id, full),
                    "client": event.client if full else event.client[:10],
                    "k": view["replicas"],
                    "price": show(view["price_per_replica"]),
                    "status": view["status_name"],
                    "replicas": ",".join(view["replica_states"]) or "-",
                }
            )
    table(rows, list(rows[0]) if rows else ["job"])


@command(show_group, "pools", signer=False)
@since_option
def show_pools(manifest, since):
    """Every provider pool: own stake, delegated stake, locked collateral."""
    cs = connect(manifest)
    rows = []
    with step("reading pools"):
        owners = {e.owner for e in _events(cs.registry, "DeviceRegistered", _start(cs, since))}
        for owner in sorted(owners):
            pool = cs.staking.pool(owner)
            rows.append(
                {
                    "provider": owner,
                    **{k: show(v) if isinstance(v, int) else v for k, v in pool.items()},
                }
            )
    table(rows, list(rows[0]) if rows else ["provider"])


@command(show_group, "proposals", signer=False)
def show_proposals(manifest):
    """Every proposal with its state and tally."""
    from computeshare.governance import STATE_NAMES

    cs = connect(manifest)
    rows = []
    with step("reading proposals"):
        for proposal_id in range(1, cs.governor.proposalCount() + 1):
            against, for_, abstain = cs.governor.proposalVotes(proposal_id)
            rows.append(
                {
                    "proposal": proposal_id,
                    "proposer": cs.governor.proposalProposer(proposal_id)[:10],
                    "state": STATE_NAMES[cs.governor.state(proposal_id)],
                    "for": show(for_),
                    "against": show(against),
                    "abstain": show(abstain),
                }
            )
    table(rows, list(rows[0]) if rows else ["proposal"])

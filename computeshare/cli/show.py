"""`computeshare show`: read-only tables, read from the event index.

Each command first brings the index (`deployments/<network>-<chain id>.sqlite`, or `--db`)
up to the head, then answers from it: one `eth_getLogs` per new page of blocks instead of a
rescan from the deployment block, and no view call per row.
"""

from __future__ import annotations

import click

from computeshare.cli.common import full_option, hex_id, show, step, table
from computeshare.cli.read import Deployment, read_command


@click.group(name="show")
def show_group():
    """Read-only tables: devices, jobs, pools, proposals, parameters."""


db_option = click.option(
    "--db", help="index file or SQLAlchemy URL (default: the manifest's name, .sqlite)"
)


def synced(manifest, db):
    """The deployment's event index, brought up to the head."""
    index = Deployment(manifest).open_index(db)
    with step("updating the index"):
        index.sync()
    return index


def _short(text: str | None, full: bool, size: int = 10) -> str:
    return (text or "-") if full else (text or "-")[:size]


@read_command(show_group, "devices")
@db_option
@full_option
def show_devices(manifest, db, full):
    """Every registered device with its spec, status and record."""
    rows = [
        {
            "device": _short(d["device_id"], full),
            "owner": _short(d["owner"], full),
            "status": d["status"],
            "cpus": d["cpus"],
            "gpus": d["gpus"],
            "region": d["region"],
            "audits": len(d["auditors"]),
            "running": d["running"],
            "done": d["completed"],
            "failed": d["failed"],
            "slashed": d["slashed"],
        }
        for d in synced(manifest, db).devices()
    ]
    table(rows, list(rows[0]) if rows else ["device"])


@read_command(show_group, "jobs")
@db_option
@full_option
@click.option("--status", type=click.Choice(["open", "disputed", "finalized", "cancelled"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def show_jobs(manifest, db, full, status, limit):
    """The newest jobs with their status and replicas."""
    rows = [
        {
            "job": _short(j["job_id"], full),
            "client": _short(j["client"], full),
            "k": j["replicas"],
            "price": show(int(j["price"])),
            "status": j["status"],
            "replicas": ",".join(j["replica_states"][s] for s in sorted(j["replica_states"]))
            or "-",
        }
        for j in synced(manifest, db).jobs(limit=limit, status=status)
    ]
    table(rows, list(rows[0]) if rows else ["job"])


@read_command(show_group, "pools")
@db_option
def show_pools(manifest, db):
    """Every provider pool: own stake, delegated stake, locked collateral, income, slashes."""
    rows = [
        {
            "provider": p["provider"],
            "own stake": show(int(p["own_stake"])),
            "delegated": show(int(p["delegated"])),
            "delegators": p["delegators"],
            "locked": show(int(p["locked"])),
            "thawing": show(int(p["own_thawing"]) + int(p["delegated_thawing"])),
            "cut": f"{p['cut_bps'] / 100:.2f}%",
            "income": show(p["income"]),
            "slashed": show(p["slashed"]),
        }
        for p in synced(manifest, db).pools()
    ]
    table(rows, list(rows[0]) if rows else ["provider"])


@read_command(show_group, "proposals")
@db_option
@full_option
def show_proposals(manifest, db, full):
    """Every proposal with its state and tally."""
    rows = [
        {
            "proposal": hex_id(p["proposal_id"], full),
            "proposer": p["proposer"][:10],
            "state": p["state_name"],
            "for": show(int(p.get("for_", 0))),
            "against": show(int(p.get("against", 0))),
            "abstain": show(int(p.get("abstain", 0))),
            "description": p["description"].splitlines()[0][:40] if p["description"] else "",
        }
        for p in synced(manifest, db).proposals()
    ]
    table(rows, list(rows[0]) if rows else ["proposal"])


@read_command(show_group, "params")
def show_params(manifest):
    """Every governed parameter: its value now, in its unit, and its hard bounds."""
    from computeshare.params import PARAMETERS

    rows = []
    for p in Deployment(manifest).parameters():
        known = PARAMETERS[p["contract"]][p["name"]]
        rows.append(
            {
                "parameter": f"{p['contract']}.{p['name']}",
                "value": p["text"],
                "low": known.format(p["low"]),
                "high": known.format(p["high"]),
                "default": known.format(p["default"]),
                "raw": p["value"],
            }
        )
    table(rows, ["parameter", "value", "low", "high", "default", "raw"])

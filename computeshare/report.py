"""Reports on a deployment's market, as plain-text tables: devices and their records, jobs
and their replicas' outcomes, balances and stakes, gas by operation, and the dashboard's
pages written as files. The demo prints them; benchmarks use `format_table`.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from ape import chain

from computeshare.abi import selectors
from computeshare.client import ComputeShare
from computeshare.constants import JobStatus, Outcome, label
from computeshare.format import tokens


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Plain-text table, right-aligned numbers, for benchmark output and the README."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    line = "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(columns, widths, strict=True))
    )
    out = [line, "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(out)


def settled_replicas(cs: ComputeShare, start: int, head: int) -> dict[tuple[bytes, str], object]:
    """Every `ReplicaSettled` event from `start` to `head`, by (job id, provider)."""
    return {
        # `provider` is shadowed on ape's log objects: read it from the event arguments.
        (bytes(e.job_id), e.event_arguments["provider"]): e
        for e in cs.escrow.ReplicaSettled.range(start, head)
    }


def device_rows(cs: ComputeShare, names: dict[str, str]) -> list[dict]:
    """The devices of the named accounts, with their region, GPUs and record."""
    rows = []
    for address, name in names.items():
        for device_id, device in cs.devices_of(address):
            record = cs.escrow_view.device_record(device_id)
            rows.append(
                {
                    "provider": name,
                    "device": "0x" + device_id.hex()[:10],
                    "region": device.spec.region,
                    "gpus": device.spec.gpu_count,
                    "completed": record.completed,
                    "failed": record.failed,
                    "slashed": record.slashed,
                }
            )
    return rows


def result_columns(result) -> dict:
    """What the providers served for a job (a `RunResult` checked against the chain, or
    None when none matched)."""
    if result is None:
        return {"result": "refused", "fuel": "-", "output": "-"}
    return {
        "result": result.status_name,
        "fuel": f"{result.fuel:,}",
        "output": f"{len(result.output)} B {result.output[:6].hex()}",
    }


def job_rows(cs: ComputeShare, jobs: list[dict], names: dict[str, str], settled: dict) -> list:
    """One row per job (a dict with `label`, `id`, `k`, `workload`, `result` and, if it was
    disputed, `ruling`): its status, result and each replica's provider, outcome and pay."""
    rows = []
    for job in jobs:
        view = cs.escrow_view.job(job["id"])
        replicas = []
        for slot in range(view.accepted):
            provider = cs.escrow_view.assignment(job["id"], slot).provider
            if view.replicas == 1:  # a k = 1 replica is a hash on chain: see its events
                provider = cs.jobs.replica(job["id"]).provider
            event = settled.get((job["id"], provider))
            outcome = label(Outcome, event.outcome) if event else "?"
            paid = f" {tokens(event.paid)}" if event and event.paid else ""
            replicas.append(f"{names.get(provider, provider[:8])}:{outcome}{paid}")
        rows.append(
            {
                "job": job["label"],
                "k": job["k"],
                "workload": job["workload"],
                "status": "finalized" if view.status == JobStatus.FINALIZED else str(view.status),
                **result_columns(job["result"]),
                "replicas (paid)": " ".join(replicas),
                "dispute": job.get("ruling", "-"),
            }
        )
    return rows


def money_rows(cs: ComputeShare, names: dict[str, str], settled: dict) -> list[dict]:
    """Each named account's wallet, escrow balance and own stake, with what its replicas
    earned and lost to slashing."""
    paid, slashed = Counter(), Counter()
    for (_, provider), event in settled.items():
        paid[provider] += event.paid if event.outcome == Outcome.COMPLETED else 0
        slashed[provider] += event.slashed
    return [
        {
            "account": name,
            "wallet": tokens(cs.token.balanceOf(address)),
            "escrow balance": tokens(cs.escrow.balanceOf(address)),
            "own stake": tokens(cs.staking.pool(address).own_stake),
            "earned": tokens(paid[address]) if address in paid else "-",
            "slashed": tokens(slashed[address]) if address in slashed else "-",
        }
        for address, name in names.items()
    ]


def gas_by_operation(cs: ComputeShare, start: int, head: int) -> list[dict]:
    """Walks every block from `start` to `head` and totals receipts by contract method."""
    methods = {
        cs.manifest.address(name).lower(): (name, selectors(cs.manifest.abi(name)))
        for name in cs.manifest.names()
    }
    calls, gas = Counter(), Counter()
    web3 = chain.provider.web3
    for number in range(start, head):
        block = web3.eth.get_block(number, full_transactions=True)
        for tx in block.transactions:
            if tx["to"] is None:
                operation = "deploy"
            else:
                name, known = methods.get(tx["to"].lower(), ("other", {}))
                operation = f"{name}.{known.get(bytes(tx['input'])[:4], '?')}"
            receipt = web3.eth.get_transaction_receipt(tx["hash"])
            calls[operation] += 1
            gas[operation] += receipt["gasUsed"]
    return [
        {"operation": operation, "calls": calls[operation], "gas_used": f"{gas[operation]:,}"}
        for operation in sorted(gas, key=gas.get, reverse=True)
    ]


def write_dashboard(cs: ComputeShare, index_file: Path, directory: Path) -> tuple[int, int]:
    """Indexes the deployment into `index_file` and writes the dashboard's pages as static
    files to `directory` (replacing it). Returns (pages written, events indexed)."""
    from computeshare.dashboard import write_static  # Starlette and Jinja2 only here

    index = cs.open_index(index_file)
    synced = index.sync()
    if directory.exists():
        shutil.rmtree(directory)
    return len(write_static(index, directory)), synced.events

"""Why a job waits: `computeshare client status` counts, per rule JobEscrow and the device
registry apply on acceptance, the registered devices that fail it first (issue 30).

One deployment with devices that each fail one rule (and one that passes them all), on the
local node; the devices are read from the event index, the stakes from the chain."""

from __future__ import annotations

import json

import pytest

from computeshare.client import ComputeShare
from computeshare.constants import TOKEN
from computeshare.matching import GPUS, PRICE, RULES, STAKE, why_waiting
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import encode_spec

SPEC = encode_spec("sha256-chain", {"seed": "why", "rounds": 9})
NO_GPU = {"gpu_count": 0, "gpu_model": b"", "vram_mb": 0}


@pytest.fixture
def manifest(deployed_manifest):
    return deployed_manifest


def provider(manifest, account, deployer, stake: int) -> ComputeShare:
    cs = ComputeShare.from_manifest(manifest, account=account)
    if cs.token.balanceOf(account) < stake:
        cs.token.transfer(account, stake, sender=deployer)
    cs.stake(stake)
    return cs


def post(cs: ComputeShare, **terms) -> bytes:
    requirements = job_requirements(compute_seconds=60, region=276)
    requirements.update(terms.pop("requirements", {}))
    return cs.post_job(SPEC, requirements, replicas=1, duration=3600, **terms)


def test_status_counts_the_rule_each_device_fails(cli, manifest, accounts, chain):
    deployer, client = accounts[0], ComputeShare.from_manifest(manifest, account=accounts[12])
    rich = provider(manifest, accounts[4], deployer, 10_000 * TOKEN)
    asks = {"price_per_second": 10**18}  # 60 tokens for 60 compute-seconds
    rich.register_device(device_spec(**asks), "")
    rich.register_device(device_spec(price_per_second=2 * 10**17), "")  # 12 tokens
    rich.register_device(device_spec(**NO_GPU), "")
    paused = rich.register_device(device_spec(), "")
    rich.registry.pause(paused, sender=accounts[4])
    rich.register_device(device_spec(region=250), "")
    busy = rich.register_device(device_spec(max_concurrent_jobs=1), "")
    rich.register_device(device_spec(), "")  # fits every rule
    # A provider whose free stake is below the collateral, and one whose bonded stake no
    # longer covers its device (it thawed part of it).
    poor = provider(manifest, accounts[5], deployer, 1_000 * TOKEN)
    poor.register_device(device_spec(), "")
    thawed = provider(manifest, accounts[6], deployer, 1_000 * TOKEN)
    thawed.register_device(device_spec(), "")
    thawed.thaw(1 * TOKEN)
    # The one-job device holds a job already.
    other = post(client, price=10 * TOKEN, collateral=5 * TOKEN)
    rich.jobs.accept(other, 5, sender=accounts[4])
    assert rich.escrow_view.device_record(busy).running == 1

    job = post(client, price=10 * TOKEN, collateral=2_000 * TOKEN)
    status = cli("client", "status", job.hex()[:10])
    assert status.exit_code == 0, status.output
    lines = status.output.strip().splitlines()
    assert lines[0].startswith("open: replicas 1, accepted 0"), status.output
    waiting = lines[-1].strip()
    assert waiting.startswith("nobody accepted yet: 9 devices; "), waiting
    assert (
        "2 need a higher price (the cheapest asks 12 tokens for the job's 60 compute-seconds,"
        " you pay 10)" in waiting
    ), waiting
    for said in (
        "1 lacks a GPU",
        "1 is paused or retired",
        "1 is in another region",
        "1 runs as many jobs as it may at once",
        "1 has too little free stake for the collateral of 2,000 tokens",
        "1 has a provider whose bonded stake does not cover its active devices",
        "1 passes every rule (its agent may decline the job by its policy, or be offline)",
    ):
        assert said in waiting, (said, waiting)
    # --json: the counts as an object, by the rule names the agent's lines use too.
    view = json.loads(cli("client", "status", job.hex()[:10], "--json").output)
    expected = {
        "price": 2, "gpus": 1, "inactive": 1, "region": 1, "capacity": 1, "stake": 1,
        "unbonded": 1,
    }  # fmt: skip
    assert view["waiting"]["counts"] == expected, view["waiting"]
    assert set(expected) <= set(RULES) and {GPUS, PRICE, STAKE} <= set(expected)
    assert view["waiting"]["devices"] == 9 and view["waiting"]["fit"] == 1
    assert int(view["waiting"]["cheapest"]) == 12 * TOKEN
    assert int(view["waiting"]["price"]) == 10 * TOKEN

    # An audited-only job: the devices that passed the hardware rules fail the audit.
    audited = post(client, price=100 * TOKEN, requirements={"attested_only": True})
    rich.open_index()
    counts = why_waiting(rich, audited).counts
    assert counts == {"inactive": 1, "unbonded": 1, "gpus": 1, "region": 1, "audit": 5}, counts

    # k = 2 with one replica taken: the taker's other devices may not take the second.
    pair = client.post_job(
        SPEC, job_requirements(compute_seconds=60, region=276), price=100 * TOKEN,
        replicas=2, duration=3600,
    )  # fmt: skip
    rich.jobs.accept(pair, 6, sender=accounts[4])
    waiting = why_waiting(rich, pair)
    assert waiting.counts == {
        "inactive": 1, "unbonded": 1, "gpus": 1, "region": 1, "capacity": 1, "on_job": 3,
    }, waiting.counts  # fmt: skip
    assert waiting.fit == 1 and waiting.cheapest is None
    assert waiting.text().startswith("1 of 2 replicas not accepted yet: 9 devices; 3 belong to")

    # Accepted: nothing is said about devices.
    assert why_waiting(rich, other) is None
    status = cli("client", "status", other.hex()[:10]).output
    assert "nobody accepted" not in status and "accepted 1" in status, status

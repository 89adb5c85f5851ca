"""What the contracts would refuse, checked before an operation sends anything.

`computeshare.client.ComputeShare` calls these before an operation's first transaction
(an approval, a deposit), so none is sent for a final call that would revert. Each
mirrors the asserts of the contract function it guards, reading the bounds and governed
parameters from the deployment (tests/test_sdk.py checks the refusals and holds the
constants to the contracts).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from computeshare.constants import BPS, MAX_AMOUNT, MAX_REPLICAS
from computeshare.exceptions import InvalidInput, NoEligibleDevice, NotAProvider, WrongState
from computeshare.format import tokens as show
from computeshare.metering import R_FLOOR
from computeshare.workloads import COMMIT_SECONDS, WorkloadError, decode_spec, run_seconds

if TYPE_CHECKING:
    from computeshare.client import ComputeShare

MIN_DURATION = 60  # seconds: the shortest commit deadline a job is posted with

# A job's requirements no device could ever meet: the registry's bound on the device field
# each requirement is compared with (JobEscrow's `_post` asserts the same bounds).
_DEVICE_BOUNDS = {
    "min_cpu_cores": "MAX_CPU_CORES",
    "min_memory_mb": "MAX_MEMORY_MB",
    "min_gpu_count": "MAX_GPU_COUNT",
    "min_vram_mb": "MAX_VRAM_MB",
    "region": "MAX_REGION",
}


def checked_address(value, what: str = "") -> str:
    """`value` as a checksummed address; InvalidInput (naming `what`, if given) if it is
    not one."""
    from eth_utils import is_address, to_checksum_address

    if not isinstance(value, str) or not is_address(value):
        raise InvalidInput(f"{what + ': ' if what else ''}{value!r} is not an address")
    return to_checksum_address(value)


def date(timestamp: int) -> str:
    """A chain timestamp as a UTC date: "2026-12-01 10:00 UTC"."""
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d %H:%M UTC")


def check_post(
    cs: ComputeShare, spec: bytes, requirements: dict, price: int, replicas: int, duration: int,
    collateral: int,
) -> None:  # fmt: skip
    """Raises what `post_job` would refuse: a spec every provider declines, terms
    JobEscrow reverts on, requirements no device can meet, a paused escrow."""
    try:
        job = decode_spec(spec)  # the checks every provider makes
    except WorkloadError as error:
        raise InvalidInput(str(error)) from None
    if duration < MIN_DURATION:
        raise InvalidInput(f"a job needs a duration of at least {MIN_DURATION} s")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise InvalidInput(f"a job has 1 to at most {MAX_REPLICAS} replicas, not {replicas}")
    check_terms(cs, price, collateral, duration)
    needed = run_seconds(job.fuel) + COMMIT_SECONDS
    if duration < needed:
        raise InvalidInput(
            f"a fuel limit of {job.fuel:,} needs a duration of at least {needed:,.0f} s"
            " (its run at the floor R_FLOOR, then the commitment): providers would decline"
        )
    seconds = requirements.get("compute_seconds", 0)
    if seconds and job.fuel > R_FLOOR * seconds:
        raise InvalidInput(
            f"a fuel limit of {job.fuel:,} needs compute_seconds of at least"
            f" {-(-job.fuel // R_FLOOR):,} (at the floor R_FLOOR): providers would decline"
        )
    check_satisfiable(cs, requirements, price)


def check_terms(cs: ComputeShare, price: int, collateral: int, duration: int) -> None:
    """Raises what JobEscrow refuses of any new job, posted or matched from an offer: a
    commit deadline more than MAX_JOB_DURATION away, a price or collateral out of range, a
    collateral under MIN_COLLATERAL_BPS of the price, an escrow paused for new jobs."""
    longest = cs.parameter("JobEscrow", "MAX_JOB_DURATION")
    if duration > longest:
        raise InvalidInput(f"a job's duration is at most {longest // 86_400}d ({longest:,} s)")
    if not 0 < price <= MAX_AMOUNT or not 0 <= collateral <= MAX_AMOUNT:
        raise InvalidInput("the price must be positive, and price and collateral < 2**96")
    least = cs.parameter("JobEscrow", "MIN_COLLATERAL_BPS")
    if collateral * BPS < price * least:
        raise InvalidInput(
            f"the collateral per replica must be at least {least / 100:g}% of the price"
            f" ({show(-(-price * least // BPS))} tokens)"
        )
    paused_until = cs.escrow.paused_until()
    if cs.chain.now() < paused_until:
        raise WrongState(f"JobEscrow takes no new jobs until {date(paused_until)}")


def check_satisfiable(cs: ComputeShare, requirements: dict, price: int) -> None:
    """Raises NoEligibleDevice when no device the registry accepts could ever take a
    job with these requirements at this price per replica."""
    for field, bound in _DEVICE_BOUNDS.items():
        most = getattr(cs.registry, bound)()
        if requirements.get(field, 0) > most:
            raise NoEligibleDevice(
                f"no device can satisfy the job: {field} {requirements[field]:,} is over"
                f" the registry's {bound} {most:,}"
            )
    seconds = requirements.get("compute_seconds", 0)
    if seconds == 0:
        raise NoEligibleDevice("no device can satisfy the job: compute_seconds is 0")
    if price < seconds:
        raise NoEligibleDevice(
            f"no device can satisfy the job: its price is below the least a device asks"
            f" for {seconds:,} compute_seconds"
        )


def check_delegation(cs: ComputeShare, provider: str, amount: int, min_cut: int | None) -> int:
    """Raises what `Staking.delegate_to(provider, amount, min_cut)` would revert on: below
    MIN_DELEGATION, no provider (no own stake), a cut in force or scheduled below
    `min_cut` (default: the provider's cut now), a full pool. Returns `min_cut`."""
    minimum = cs.parameter("Staking", "MIN_DELEGATION")
    if amount < minimum:
        raise InvalidInput(f"the minimum delegation is {show(minimum)}")
    pool = cs.staking.pool(provider)
    if pool.own_stake == 0:
        raise NotAProvider(f"{provider} is not a provider: it has no own stake to delegate to")
    if min_cut is None:
        min_cut = cs.staking.delegator_cut(provider)
    cut = pool.delegator_cut_bps
    if pool.pending_cut_at != 0:  # as Staking reads it: a scheduled cut counts too
        pending = pool.pending_cut_bps
        cut = pending if cs.chain.now() >= pool.pending_cut_at else min(cut, pending)
    if cut < min_cut:
        raise WrongState(
            f"the provider's delegator cut is {cut / 100:g}% (in force or scheduled),"
            f" below your minimum of {min_cut / 100:g}%"
        )
    cap = pool.own_stake * cs.parameter("Staking", "MAX_DELEGATION_RATIO")
    if pool.delegated_tokens + amount > cap:
        room = max(cap - pool.delegated_tokens, 0)
        raise WrongState(
            f"the pool would go over its cap of {show(cap)} tokens: it has room for {show(room)}"
        )
    return min_cut

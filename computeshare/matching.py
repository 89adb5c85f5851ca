"""Which devices may take a job, and why the others may not: the rules JobEscrow applies when
a device accepts a replica, by name.

`JobEscrow.accept` asks `DeviceRegistry.check_fit` (the device is active and its provider's
bonded stake covers its active devices; its CPUs, memory, GPUs and VRAM reach the job's
minimums; its region is the job's, if it names one; it is audited, if the job asks; its
price per second times the job's compute-seconds is within the job's price per replica),
then checks the device's capacity (its running jobs below its `max_concurrent_jobs`), that
the provider holds no other replica of the job, and `Staking.lock` the provider's free
stake against the collateral. `failure` names the first of these `RULES` a device fails,
in that order; the provider agent says the same names when it passes a job over or lets
it wait, and `why_waiting` counts them over every registered device for
`computeshare client status`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from computeshare.constants import DEVICE_STATUS
from computeshare.format import tokens as show
from computeshare.jobs import STATUS_OPEN, unpack_requirements

# The rules, in the order JobEscrow's acceptance checks them.
INACTIVE = "inactive"  # the device is paused or retired
UNBONDED = "unbonded"  # its provider's bonded stake does not cover its active devices
CPUS = "cpus"
MEMORY = "memory"
GPUS = "gpus"
VRAM = "vram"
REGION = "region"
AUDIT = "audit"  # the job asks for an audited device; this one's audit is missing or stale
PRICE = "price"  # the device asks more for the job's compute-seconds than the job pays
CAPACITY = "capacity"  # the device runs as many jobs as it may at once
ON_JOB = "on_job"  # its provider holds another replica of the job
STAKE = "stake"  # its provider's free stake is below the job's collateral
RULES = (
    INACTIVE,
    UNBONDED,
    CPUS,
    MEMORY,
    GPUS,
    VRAM,
    REGION,
    AUDIT,
    PRICE,
    CAPACITY,
    ON_JOB,
    STAKE,
)


# (one device, several devices) for the counts `Waiting.text` lists.
PHRASES = {
    INACTIVE: ("is paused or retired", "are paused or retired"),
    UNBONDED: (
        "has a provider whose bonded stake does not cover its active devices",
        "have a provider whose bonded stake does not cover its active devices",
    ),
    CPUS: ("has too few CPU cores", "have too few CPU cores"),
    MEMORY: ("has too little memory", "have too little memory"),
    GPUS: ("has too few GPUs", "have too few GPUs"),
    VRAM: ("has too little VRAM", "have too little VRAM"),
    REGION: ("is in another region", "are in another region"),
    AUDIT: ("is not audited", "are not audited"),
    PRICE: ("needs a higher price", "need a higher price"),
    CAPACITY: ("runs as many jobs as it may at once", "run as many jobs as they may at once"),
    ON_JOB: (
        "belongs to a provider already on the job",
        "belong to a provider already on the job",
    ),
    STAKE: ("has too little free stake", "have too little free stake"),
}
_ONE_GPU = ("lacks a GPU", "lack a GPU")


@dataclass(frozen=True)
class Device:
    """What the acceptance rules read of a device and its provider."""

    device_id: str
    owner: str
    status: str  # "active", "paused" or "retired"
    cpus: int
    memory_mb: int
    gpus: int
    vram_mb: int
    region: int
    price_per_second: int
    max_jobs: int
    running: int
    bonded: int  # the provider's bonded stake (own plus delegated)
    free: int  # the provider's own stake not locked as collateral
    active_devices: int  # the provider's active devices
    attested: bool | None = None  # audited for its current spec; None: not read


@dataclass(frozen=True)
class Needs:
    """What a job asks of a device: its unpacked requirements, price and collateral per
    replica, the registry's stake per active device, and the providers already on it."""

    requirements: dict
    price: int
    collateral: int
    stake_per_device: int
    providers: frozenset[str] = frozenset()

    def ask(self, device: Device) -> int:
        """What the device asks for the job: its price per second times the job's
        compute-seconds (`check_fit`'s budget test)."""
        return device.price_per_second * self.requirements["compute_seconds"]


def failure(device: Device, needs: Needs) -> tuple[str, str] | None:
    """The first rule of `RULES` the device fails for the job, with what it lacks in words
    ("price", "the device asks 60 tokens for the job's 60 compute-seconds; it pays 10");
    None if it passes them all. A device whose `attested` was not read passes the audit."""
    r = needs.requirements
    if device.status != "active":
        return INACTIVE, f"the device is {device.status}"
    if device.bonded < needs.stake_per_device * device.active_devices:
        return UNBONDED, (
            f"the bonded stake of {show(device.bonded)} tokens does not cover the provider's"
            f" {device.active_devices} active devices ({show(needs.stake_per_device)} each)"
        )
    for rule, have, need, unit in (
        (CPUS, device.cpus, r["min_cpu_cores"], "CPU cores"),
        (MEMORY, device.memory_mb, r["min_memory_mb"], "MB of memory"),
        (GPUS, device.gpus, r["min_gpu_count"], "GPUs"),
        (VRAM, device.vram_mb, r["min_vram_mb"], "MB of VRAM"),
    ):
        if have < need:
            return rule, f"the device has {have:,} {unit}; the job needs {need:,}"
    if r["region"] and device.region != r["region"]:
        return REGION, f"the device is in region {device.region}; the job needs {r['region']}"
    if r["attested_only"] and device.attested is False:
        return AUDIT, "the job needs an audited device; this one's audit is missing or stale"
    if (ask := needs.ask(device)) > needs.price:
        return PRICE, (
            f"the device asks {show(ask)} tokens for the job's {r['compute_seconds']:,}"
            f" compute-seconds; it pays {show(needs.price)}"
        )
    if device.running >= device.max_jobs:
        return CAPACITY, f"the device holds {device.running} of its {device.max_jobs} jobs"
    if device.owner.lower() in needs.providers:
        return ON_JOB, "the provider holds another replica of the job"
    if needs.collateral > device.free:
        return STAKE, (
            f"the collateral {show(needs.collateral)} is above the free stake {show(device.free)}"
        )
    return None


@dataclass
class Waiting:
    """Why a job's replicas wait: over `devices` registered devices, how many fail each
    rule first (`counts`, by rule name) and how many pass them all (`fit`); `cheapest` is
    the least a device held back by its price alone asks for the job. `blocked` says why
    no device can accept at all (the commit deadline passed, JobEscrow paused)."""

    replicas: int
    accepted: int
    devices: int
    price: int
    collateral: int
    compute_seconds: int
    min_gpus: int
    counts: dict[str, int] = field(default_factory=dict)
    fit: int = 0
    cheapest: int | None = None
    blocked: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "replicas": self.replicas,
            "accepted": self.accepted,
            "devices": self.devices,
            "counts": dict(self.counts),
            "fit": self.fit,
            "cheapest": self.cheapest,
            "price": self.price,
            "collateral": self.collateral,
            "compute_seconds": self.compute_seconds,
            "blocked": self.blocked,
        }

    def text(self) -> str:
        """One line: "nobody accepted yet: 12 devices; 7 need a higher price (...), ..."."""
        if self.accepted:
            head = f"{self.replicas - self.accepted} of {self.replicas} replicas not accepted yet"
        else:
            head = "nobody accepted yet"
        if self.blocked:
            return f"{head}: {self.blocked}"
        if not self.devices:
            return f"{head}: no device is registered"
        parts = []
        order = sorted(self.counts, key=lambda rule: (-self.counts[rule], RULES.index(rule)))
        for rule in order:
            n = self.counts[rule]
            one, many = _ONE_GPU if rule == GPUS and self.min_gpus == 1 else PHRASES[rule]
            part = f"{n} {one if n == 1 else many}"
            if rule == PRICE and self.cheapest is not None:
                part += (
                    f" (the cheapest asks {show(self.cheapest)} tokens for the job's"
                    f" {self.compute_seconds:,} compute-seconds, you pay {show(self.price)})"
                )
            elif rule == STAKE:
                part += f" for the collateral of {show(self.collateral)} tokens"
            parts.append(part)
        if self.fit:
            verb = "passes" if self.fit == 1 else "pass"
            whose = "its agent" if self.fit == 1 else "their agents"
            parts.append(
                f"{self.fit} {verb} every rule ({whose} may decline the job by its policy,"
                " or be offline)"
            )
        noun = "device" if self.devices == 1 else "devices"
        return f"{head}: {self.devices} {noun}; " + ", ".join(parts)


def needs_of(cs, job_id: bytes, view=None) -> Needs:
    """The job's `Needs`, from its terms and (k > 1) the providers holding its replicas."""
    terms = cs.jobs.terms(job_id)
    view = view or cs.jobs.view(job_id)
    providers: frozenset[str] = frozenset()
    if terms.replicas > 1:
        providers = frozenset(
            str(cs.escrow_view.assignment(job_id, slot).provider).lower()
            for slot in range(view.accepted)
        )
    return Needs(
        unpack_requirements(terms.requirements),
        terms.price_per_replica,
        terms.collateral_per_replica,
        cs.parameter("DeviceRegistry", "MIN_STAKE_PER_DEVICE"),
        providers,
    )


def device_from_chain(cs, device_id: bytes) -> Device:
    """One device's `Device`, read from the chain (the registry, escrow and staking views)."""
    device = cs.registry.device(device_id)
    owner, spec = str(device.owner), device.spec
    return Device(
        device_id="0x" + bytes(device_id).hex(),
        owner=owner,
        status=DEVICE_STATUS.get(device.status, "unknown"),
        cpus=spec.cpu_cores,
        memory_mb=spec.memory_mb,
        gpus=spec.gpu_count,
        vram_mb=spec.vram_mb,
        region=spec.region,
        price_per_second=spec.price_per_second,
        max_jobs=spec.max_concurrent_jobs,
        running=cs.escrow_view.device_record(device_id).running,
        bonded=cs.staking.bonded_stake(owner),
        free=cs.staking.free_stake(owner),
        active_devices=cs.registry.active_devices(owner),
        attested=bool(device.attested),
    )


def devices_from_index(cs, rows: list[dict]) -> list[Device]:
    """`EventIndex.devices()` rows as `Device`s; the providers' stakes are read from the
    chain, once per provider."""
    stakes: dict[str, tuple[int, int, int]] = {}
    devices = []
    for row in rows:
        owner = row["owner"]
        if owner not in stakes:
            stakes[owner] = (
                cs.staking.bonded_stake(owner),
                cs.staking.free_stake(owner),
                cs.registry.active_devices(owner),
            )
        bonded, free, active = stakes[owner]
        devices.append(
            Device(
                device_id=row["device_id"],
                owner=owner,
                status=row["status"],
                cpus=int(row["cpus"]),
                memory_mb=int(row["memory_mb"]),
                gpus=int(row["gpus"]),
                vram_mb=int(row["vram_mb"]),
                region=int(row["region"]),
                price_per_second=int(row["price_per_second"]),
                max_jobs=int(row["max_jobs"]),
                running=int(row["running"]),
                bonded=bonded,
                free=free,
                active_devices=active,
                attested=None if row["auditors"] else False,
            )
        )
    return devices


def why_waiting(cs, job_id: bytes, devices: list[Device] | None = None) -> Waiting | None:
    """Why the open job `job_id` has replicas nobody accepted: every registered device
    (by default from the deployment's event index, `cs.index` or opened and synced here)
    counted under the first rule it fails. None once every replica is accepted or the job
    is no longer open. An audited-only job reads the audit of each device that has one."""
    job_id = bytes(job_id)
    view = cs.jobs.view(job_id)
    if view.status != STATUS_OPEN or view.accepted >= view.replicas:
        return None
    needs = needs_of(cs, job_id, view)
    r = needs.requirements
    if devices is None:
        index = cs.index if cs.index is not None else cs.open_index()
        index.sync()
        devices = devices_from_index(cs, index.devices())
    waiting = Waiting(
        replicas=view.replicas,
        accepted=view.accepted,
        devices=len(devices),
        price=needs.price,
        collateral=needs.collateral,
        compute_seconds=r["compute_seconds"],
        min_gpus=r["min_gpu_count"],
    )
    now = cs.chain.now()
    paused_until = cs.escrow.paused_until()
    if now >= view.deadline:
        waiting.blocked = "its commit deadline passed; no device can accept it now"
        return waiting
    if now < paused_until:
        from computeshare.checks import date

        waiting.blocked = f"JobEscrow takes no acceptances until {date(paused_until)}"
        return waiting
    counts: Counter[str] = Counter()
    for device in devices:
        if r["attested_only"] and device.attested is None:
            attested = bool(cs.registry.device(bytes.fromhex(device.device_id[2:])).attested)
            device = replace(device, attested=attested)
        failed = failure(device, needs)
        if failed is None:
            waiting.fit += 1
            continue
        counts[failed[0]] += 1
        if failed[0] == PRICE:
            ask = needs.ask(device)
            waiting.cheapest = ask if waiting.cheapest is None else min(waiting.cheapest, ask)
    waiting.counts = {rule: counts[rule] for rule in RULES if counts[rule]}
    return waiting

"""Gas of JobEscrow operations and whole job lifecycles, with 10 and with 1,000 other jobs
live: O(1) design means the figures must not grow with that number.

Run: `make bench` (or `ape run bench_escrow`). Figures are for a client and provider that
have run a job before (the steady state); the first job of a fresh client and provider pays
for creating their storage once, shown separately for the k = 1 lifecycle. The last table
splits the steady-state k = 1 lifecycle by where its gas goes, from an opcode trace.
"""

from __future__ import annotations

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand
from eth_utils import to_checksum_address

from computeshare.constants import DAY, TOKEN
from computeshare.deploy import deploy_suite
from computeshare.jobs import commitment, custody_address, deposit_shard, devices_with_fees
from computeshare.report import format_table
from computeshare.sandbox import RunResult
from computeshare.signing import sign_offer, spec_hash
from computeshare.specs import device_spec, job_requirements
from devtools.gas import receipt_breakdown
from devtools.populate import Populator, addresses

PRICE, COLLATERAL = 10 * TOKEN, 20 * TOKEN
REQS = job_requirements()
SPEC = b'{"workload": "sha256-chain", "input": "00", "rounds": 1000}'
DEVICE = device_spec(max_concurrent_jobs=16)
SALT = b"\x5a" * 32
RESULT = b"\xaa" * 32
SUBMITTED = RunResult(0, 14_027_773, bytes(range(8)))  # a run's status, fuel and output


class Bench:
    def __init__(self):
        self.deployer, self.treasury = accounts.test_accounts[:2]
        # The deployer is also the arbiter, for the disputes measured below.
        self.suite = deploy_suite(project, self.deployer, self.treasury, arbiter=self.deployer)
        self.populator = Populator(chain.provider)
        self.live = 0
        self.receipts: dict[str, list] = {}

    def fund_provider(self, provider) -> None:
        s = self.suite
        s.token.transfer(provider, 100_000 * TOKEN, sender=self.deployer)
        s.token.approve(s.staking, 2**256 - 1, sender=provider)
        s.staking.stake(20_000 * TOKEN, sender=provider)
        s.registry.register(DEVICE, "ipfs://device", sender=provider)

    def fund_client(self, client) -> None:
        s = self.suite
        s.token.transfer(client, 100_000 * TOKEN, sender=self.deployer)
        s.token.approve(s.escrow, 2**256 - 1, sender=client)

    def add_live_jobs(self, count: int) -> None:
        """`count` more open jobs, each posted by a distinct client."""
        s, pop = self.suite, self.populator
        clients = addresses("client", count, self.live)
        pop.fund_gas(clients)
        for c in clients:
            pop.send(self.deployer.address, s.token, "transfer", c, 1_000 * TOKEN)
        pop.wait()
        for c in clients:
            pop.send(c, s.token, "approve", s.escrow.address, 2**256 - 1)
            pop.send(c, s.escrow, "deposit", 100 * TOKEN)
        pop.wait()
        deadline = chain.pending_timestamp + 6 * 86_400
        for c in clients:
            pop.send(c, s.escrow, "post", SPEC, REQS, PRICE, 1, deadline, COLLATERAL)
        pop.wait()
        self.live += count

    def new_account(self, wanted):
        """A fresh test account whose deposit shard satisfies `wanted`."""
        while True:
            account = accounts.test_accounts.generate_test_account()
            if wanted(deposit_shard(account.address)):
                return account

    def lifecycle(self, client, providers, gas: dict, label: str, results=None) -> None:
        """post, accept, commit, reveal, finalize; gas per step summed under `label`."""
        s = self.suite
        k = len(providers)
        results = results or [RESULT] * k
        chain.pending_timestamp += 12
        r = s.escrow.post(
            SPEC, REQS, PRICE, k, chain.pending_timestamp + 86_400, COLLATERAL, sender=client
        )
        steps = {"post": r.gas_used}
        receipts = self.receipts[label] = [r]
        job = r.return_value
        slots = []
        for p in providers:
            r = s.jobs.accept(job, 0, sender=p)
            receipts.append(r)
            steps["accept"] = steps.get("accept", 0) + r.gas_used
            slots.append(r.return_value)
        for p, slot, res in zip(providers, slots, results, strict=True):
            r = s.jobs.commit(job, slot, commitment(job, p.address, res, SALT), sender=p)
            receipts.append(r)
            steps["commit"] = steps.get("commit", 0) + r.gas_used
        for p, slot, res in zip(providers, slots, results, strict=True):
            r = s.jobs.reveal(job, slot, res, SALT, sender=p)
            receipts.append(r)
            steps["reveal"] = steps.get("reveal", 0) + r.gas_used
        if k == 1:
            chain.pending_timestamp = s.jobs.view(job).phase_end
        r = s.jobs.finalize(job, sender=client)
        receipts.append(r)
        steps["finalize"] = r.gas_used
        for step, used in steps.items():
            gas[f"{label}: {step}"] = used
        gas[f"{label}: whole lifecycle"] = sum(steps.values())

    def lifecycle_submit(self, client, provider, gas: dict, label: str) -> None:
        """A k = 1 job with a direct result: post, accept, submit (the run's status, fuel,
        output hash and its 8-byte output), finalize."""
        s = self.suite
        chain.pending_timestamp += 12
        r = s.escrow.post(
            SPEC, REQS, PRICE, 1, chain.pending_timestamp + 86_400, COLLATERAL, sender=client
        )
        job, steps = r.return_value, {"post": r.gas_used}
        receipts = self.receipts[label] = [r]
        receipts.append(s.jobs.accept(job, 0, sender=provider))
        receipts.append(s.jobs.submit(job, SUBMITTED, sender=provider))
        chain.pending_timestamp = s.jobs.view(job).phase_end
        receipts.append(s.jobs.finalize(job, sender=client))
        for step, receipt in zip(("accept", "submit", "finalize"), receipts[1:], strict=True):
            steps[step] = receipt.gas_used
        for step, used in steps.items():
            gas[f"{label}: {step}"] = used
        gas[f"{label}: whole lifecycle"] = sum(steps.values())

    def measure(self) -> dict:
        s = self.suite
        gas: dict[str, int] = {}
        # The client's deposit shard is already open (a live job's client deposited into
        # it), as nearly every shard soon is; another new client opens a shard.
        opened = {deposit_shard(c) for c in addresses("client", self.live)}
        client = self.new_account(lambda shard: shard in opened)
        opener = self.new_account(lambda shard: shard not in opened)
        providers = [accounts.test_accounts.generate_test_account() for _ in range(3)]
        for account in (client, opener, *providers):
            self.deployer.transfer(account, 10**19)
        self.fund_client(client)
        self.fund_client(opener)
        for p in providers:
            self.fund_provider(p)
        gas["deposit (first)"] = s.escrow.deposit(5_000 * TOKEN, sender=client).gas_used
        gas["deposit"] = s.escrow.deposit(5_000 * TOKEN, sender=client).gas_used
        r = s.escrow.deposit(5_000 * TOKEN, sender=opener)
        gas["deposit (first into a new shard)"] = r.gas_used
        self.lifecycle(client, providers[:1], gas, "k=1 first job")
        self.lifecycle(client, providers[:1], gas, "k=1")
        self.lifecycle_submit(client, providers[0], gas, "k=1 submit")
        self.lifecycle(client, providers, gas, "k=3 first job")
        self.lifecycle(client, providers, gas, "k=3")
        # A direct match of a signed offer, then its expiry with a silent provider.
        offer = {
            "provider": providers[1].address,
            "device_nonce": 0,
            "client": client.address,
            "price": PRICE,
            "collateral": COLLATERAL,
            "spec_hash": spec_hash(SPEC),
            "min_duration": 600,
            "max_duration": 7 * DAY,
            "expiry": chain.pending_timestamp + 3_600,
            "nonce": self.live,
        }
        signature = sign_offer(
            providers[1].private_key,
            chain_id=chain.chain_id,
            offer_book=s.offers.address,
            offer=offer,
        )
        r = s.offers.match_offer(
            SPEC, chain.pending_timestamp + 3_600, offer, signature, sender=client
        )
        gas["match offer (post + accept)"] = r.gas_used
        chain.pending_timestamp = s.jobs.view(r.return_value).phase_end
        gas["expire (no-show slashed)"] = s.jobs.expire(r.return_value, sender=client).gas_used
        # Withdrawals out of the deposit shards: a client from its own; a provider its pay
        # from the shard of the client that paid it (`ComputeShare.payout_shard` names
        # it). Each further shard a withdrawal reads costs about 3,100 gas
        # (tests/test_escrow.py, all 1,024 of them: 3.18 M).
        r = s.escrow.withdraw(1_000 * TOKEN, sender=client)
        gas["withdraw (own shard)"] = r.gas_used
        pay = s.escrow.balanceOf(providers[0])
        r = s.escrow.withdraw_from_shard(pay, deposit_shard(client), sender=providers[0])
        gas["withdraw (named shard)"] = r.gas_used
        self.disputes(client, providers, gas)
        return gas

    def disputes(self, client, providers, gas: dict) -> None:
        """A cancel; a k = 1 client's dispute (JobDisputes, which pulls the bond) and the
        ruling for the client (the provider slashed); a k = 3 job whose replicas split 2:1,
        sent to the arbiter by `finalize`, then ruled for the majority's result."""
        s = self.suite
        r = s.escrow.post(
            SPEC, REQS, PRICE, 1, chain.pending_timestamp + 86_400, COLLATERAL, sender=client
        )
        gas["cancel"] = s.jobs.cancel(r.return_value, sender=client).gas_used
        s.token.approve(s.job_disputes, 2**256 - 1, sender=client)
        r = s.escrow.post(
            SPEC, REQS, PRICE, 1, chain.pending_timestamp + 86_400, COLLATERAL, sender=client
        )
        job = r.return_value
        s.jobs.accept(job, 0, sender=providers[0])
        s.jobs.submit(job, SUBMITTED, sender=providers[0])
        gas["k=1 dispute"] = s.jobs.dispute(job, sender=client).gas_used
        r = s.jobs.rule(job, True, sender=self.deployer)
        gas["k=1 rule for the client (provider slashed)"] = r.gas_used
        r = s.escrow.post(
            SPEC, REQS, PRICE, 3, chain.pending_timestamp + 86_400, COLLATERAL, sender=client
        )
        job = r.return_value
        slots = [s.jobs.accept(job, 0, sender=p).return_value for p in providers]
        results = [RESULT, RESULT, b"\xbb" * 32]
        for p, slot, res in zip(providers, slots, results, strict=True):
            s.jobs.commit(job, slot, commitment(job, p.address, res, SALT), sender=p)
        for p, slot, res in zip(providers, slots, results, strict=True):
            s.jobs.reveal(job, slot, res, SALT, sender=p)
        gas["k=3 split: finalize (to the arbiter)"] = s.jobs.finalize(job, sender=client).gas_used
        r = s.jobs.rule(job, result=RESULT, sender=self.deployer)
        gas["k=3 split: rule (one slashed)"] = r.gas_used

    def breakdown(self, label: str) -> list[dict]:
        """Where the gas of lifecycle `label` went, summed over its transactions."""
        s = self.suite
        names = {
            c.address.lower(): n
            for n, c in (
                ("JobEscrow", s.escrow),
                ("Staking", s.staking),
                ("DeviceRegistry", s.registry),
                ("ComputeToken", s.token),
            )
        }
        parts: dict[str, int] = {}
        for r in self.receipts[label]:
            for part, gas in receipt_breakdown(chain.provider, r, names).items():
                parts[part] = parts.get(part, 0) + gas
        return [
            {"part": part, "gas": gas}
            for part, gas in sorted(parts.items(), key=lambda kv: -abs(kv[1]))
            if gas
        ]


BLOCK_GAS = 30_000_000
ZERO_ADDRESS = "0x" + "00" * 20
MAX_REPLICAS, MAX_SWEEP = 9, 64


def address_in_shard(shard: int, i: int) -> str:
    """The `i`-th of some fresh addresses (anvil impersonates them) in deposit shard `shard`."""
    return to_checksum_address(((0xD057 << 144) | (i << 10) | shard).to_bytes(20, "big"))


class WorstCases:
    """The most gas each settlement, slash, sweep and withdrawal can take, on a fresh suite
    arranged for it: every token JobEscrow holds sits in one shard (its only client's),
    and the providers and the treasury sit in the next one, so each search of the shards
    for a payment reads all 1,024 of them before it finds the tokens; before each
    measurement an outsider puts one wei in every other shard, which the search drains (a
    payment out of each). Every pool has a delegator whose income JobEscrow holds, so each
    slash gathers it first. Gas is the receipt's and the limit the transaction needs
    (`eth_estimateGas`: before storage refunds), which must fit a block."""

    def __init__(self, deployer):
        self.deployer = deployer
        self.client = accounts.test_accounts.generate_test_account()
        deployer.transfer(self.client, 10**19)
        self.home = deposit_shard(self.client.address)
        next_shard = (self.home + 1) % 1024
        self.treasury = address_in_shard(next_shard, 99)
        self.suite = s = deploy_suite(project, deployer, self.treasury, arbiter=deployer)
        s.token.transfer(self.client, 300_000 * TOKEN, sender=deployer)
        s.token.approve(s.escrow, 2**256 - 1, sender=self.client)
        s.escrow.deposit(250_000 * TOKEN, sender=self.client)
        self.donor = accounts.test_accounts[3]
        s.token.transfer(self.donor, 100 * TOKEN, sender=deployer)
        delegator = accounts.test_accounts[4]
        s.token.transfer(delegator, 10_000 * TOKEN, sender=deployer)
        s.token.approve(s.staking, 2**256 - 1, sender=delegator)
        self.providers = []
        for i in range(MAX_REPLICAS):
            p = accounts[address_in_shard(next_shard, i)]
            p.balance += 10**20
            s.token.transfer(p, 100_000 * TOKEN, sender=deployer)
            s.token.approve(s.staking, 2**256 - 1, sender=p)
            s.staking.stake(50_000 * TOKEN, sender=p)
            for _ in range(8):  # 72 devices: more than a sweep takes
                s.registry.register(DEVICE, "ipfs://device", sender=p)
            s.staking.set_delegator_cut(2_000, sender=p)
            s.staking.delegate_to(p, 1_000 * TOKEN, 0, sender=delegator)
            self.providers.append(p)
        chain.pending_timestamp += s.staking.parameter(7)  # the warm-up
        for p in self.providers:
            s.staking.activate(p, delegator, sender=delegator)
        for device in range(8):  # every device completes a job: fees, and income held
            self.income(device)

    def job(self, results, device=0, price=10 * TOKEN, collateral=5 * TOKEN) -> bytes:
        """A k = 9 job: each provider accepts with `device`, then commits and reveals its
        result (None: it never shows up)."""
        s = self.suite
        chain.pending_timestamp += 12
        deadline = chain.pending_timestamp + 86_400
        r = s.escrow.post(SPEC, REQS, price, MAX_REPLICAS, deadline, collateral, sender=self.client)
        job = r.return_value
        slots = [s.jobs.accept(job, device, sender=p).return_value for p in self.providers]
        shown = [
            (p, i, res) for p, i, res in zip(self.providers, slots, results, strict=True) if res
        ]
        for p, slot, res in shown:
            s.jobs.commit(job, slot, commitment(job, p.address, res, SALT), sender=p)
        if len(shown) < MAX_REPLICAS:
            chain.pending_timestamp = deadline  # the reveals open without the no-shows
        for p, slot, res in shown:
            s.jobs.reveal(job, slot, res, SALT, sender=p)
        return job

    def income(self, device=0) -> None:
        """A k = 9 job all complete: each pool's income is held by JobEscrow again."""
        job = self.job([RESULT] * MAX_REPLICAS, device, price=1_000 * TOKEN, collateral=500 * TOKEN)
        self.suite.jobs.finalize(job, sender=self.client)

    def dust(self) -> None:
        """One wei into every shard but the one that holds the tokens (mined in full blocks,
        then automine is back on)."""
        s, pop = self.suite, Populator(chain.provider, in_blocks=True)
        for shard in range(1024):
            if shard != self.home:
                holder = custody_address(s.escrow.address, shard)
                pop.send(self.donor.address, s.token, "transfer", holder, 1)
        pop.close()

    def measure(self, label: str, method, *args, sender) -> dict:
        """Dusts every shard, then sends `method(*args)`: its gas and the limit it needs."""
        self.dust()  # mined: an estimate runs on the latest block
        needed = method.estimate_gas_cost(*args, sender=sender)
        used = method(*args, sender=sender).gas_used
        share = f"{needed / BLOCK_GAS:.0%}"
        return {"worst case": label, "gasUsed": used, "limit needed": needed, "of 30 M": share}

    def run(self) -> list[dict]:
        s, rows = self.suite, []
        wrong, other, unseen = b"\xbb" * 32, b"\xcc" * 32, b"\xdd" * 32
        # Nine no-shows: nine slashes, each gathering its pool's income from the shards.
        job = self.job([None] * MAX_REPLICAS)
        chain.pending_timestamp = s.jobs.view(job).phase_end
        args = (s.jobs.terms(job), s.jobs.settlement_replica(job))
        rows.append(
            self.measure("expire: nine no-shows", s.escrow.expire, *args, sender=self.client)
        )
        # No majority, then the arbiter finds all nine wrong: nine slashes.
        self.income()
        job = self.job([RESULT] * 4 + [wrong] * 4 + [other])
        s.jobs.finalize(job, sender=self.client)  # to the arbiter
        args = (s.jobs.terms(job), (ZERO_ADDRESS, 0, unseen), False)
        rows.append(
            self.measure("rule: nine found wrong", s.job_disputes.rule, *args, sender=self.deployer)
        )
        # One reveal, too few for a majority: to the arbiter, who never rules; then the
        # eight no-shows are slashed (a decided result slashes only replicas that did not
        # reveal: agreeing replicas decide, any dissent goes to the arbiter).
        self.income()
        job = self.job([RESULT] + [None] * (MAX_REPLICAS - 1))
        chain.pending_timestamp = s.jobs.view(job).phase_end
        s.jobs.finalize(job, sender=self.client)  # to the arbiter
        chain.pending_timestamp = s.jobs.view(job).phase_end
        args = (s.jobs.terms(job), s.jobs.settlement_replica(job))
        label = "finalize: unruled, eight no-shows"
        rows.append(self.measure(label, s.escrow.finalize, *args, sender=self.client))
        # The income of one pool, alone (what each slash above gathers first).
        self.income()
        p = self.providers[0]
        rows.append(self.measure("collect_income: one pool", s.staking.collect_income, p, sender=p))
        # A sweep of the most devices, into the treasury's unopened shard.
        devices = devices_with_fees(s.escrow)[:MAX_SWEEP]
        assert len(devices) == MAX_SWEEP
        rows.append(self.measure("sweep_fees: 64 devices", s.escrow.sweep_fees, devices, sender=p))
        # A provider's pay, searched for from its own shard.
        pay = s.escrow.balanceOf(p)
        rows.append(self.measure("withdraw: every shard read", s.escrow.withdraw, pay, sender=p))
        return rows


@click.command(cls=ConnectedProviderCommand)
def cli():
    """Print JobEscrow gas at 10 and 1,000 other live jobs."""
    bench = Bench()
    bench.add_live_jobs(10)
    small = bench.measure()
    bench.add_live_jobs(990)
    large = bench.measure()
    rows = [
        {
            "operation": op,
            "gasUsed @10 jobs": small[op],
            "gasUsed @1,000 jobs": large[op],
            "growth": large[op] - small[op],
        }
        for op in small
    ]
    click.echo(
        format_table(rows, ["operation", "gasUsed @10 jobs", "gasUsed @1,000 jobs", "growth"])
    )
    target = 300_000
    whole = large["k=1: whole lifecycle"]
    verdict = "within" if whole <= target else "OVER"
    steps = "post, accept, commit, reveal, finalize"
    click.echo(f"\nk = 1 lifecycle ({steps}): {whole:,} gas, {verdict} the {target:,} target")
    direct, direct_target = large["k=1 submit: whole lifecycle"], 250_000
    verdict = "within" if direct <= direct_target else "OVER"
    steps = "post, accept, submit with an 8-byte output, finalize"
    click.echo(f"k = 1 lifecycle ({steps}): {direct:,} gas, {verdict} the {direct_target:,} target")
    for label, total in (("k=1", whole), ("k=1 submit", direct)):
        parts = bench.breakdown(label)
        assert sum(p["gas"] for p in parts) == total
        click.echo(f"\nWhere the {label} lifecycle's {total:,} gas goes (opcode trace):\n")
        click.echo(format_table(parts, ["part", "gas"]))
    worst = WorstCases(bench.deployer).run()
    click.echo("\nWorst cases (each search of the shards reads all 1,024, one wei in each):\n")
    click.echo(format_table(worst, ["worst case", "gasUsed", "limit needed", "of 30 M"]))
    heaviest = max(row["limit needed"] for row in worst)
    verdict = "within" if heaviest <= BLOCK_GAS // 2 else "OVER"
    click.echo(f"\nHeaviest: {heaviest:,} gas, {verdict} half a {BLOCK_GAS:,} gas block")

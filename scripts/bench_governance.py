"""Gas table for Governor + Timelock, side by side with OpenZeppelin 5.7.0 Governor +
GovernorSettings + GovernorCountingSimple + GovernorVotesQuorumFraction +
GovernorTimelockControl + GovernorPreventLateQuorum, TimelockController and ERC20Votes.

Run: `make bench` (or `ape run bench_governance`). Every measured transaction is alone in its
block. "above intrinsic" is gasUsed minus 21,000 minus calldata: what the contracts cost.
Both follow OpenZeppelin's proposal model: the id hashes the actions, which only the event
carries, and `queue` and `execute` take them again.
"""

from __future__ import annotations

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from computeshare.constants import TOKEN
from computeshare.deploy import deploy_system
from computeshare.governance import FOR, Proposal, call
from computeshare.report import format_table
from computeshare.signing import sign_ballot
from devtools.gas import gas_row

# Peer figures, gas above intrinsic (solc 0.8.30, optimizer 200, prague, anvil 1.7.1,
# proposal threshold > 0, one transaction per block).
PEER = {
    "propose (1 action)": 51_401,
    "castVote, first voter": 46_713,
    "castVote, later voter": 46_713,
    "castVote reaching quorum late (extends)": 101_114,
    "castVoteBySig": 76_600,
    "queue": 123_230,
    "execute (1 action, a store)": 71_316,
    # OpenZeppelin keeps no per-proposer state: a second proposal costs the same.
    "propose (1 action), proposer's second": 51_401,
}
# The lifecycle: propose, three votes, queue, execute.
LIFECYCLE = (
    "propose (1 action)",
    "castVote, first voter",
    "castVote, later voter",
    "castVote, 200 checkpoints",
    "queue",
    "execute (1 action, a store)",
)
PEER_LIFECYCLE = 51_401 + 3 * 46_713 + 123_230 + 71_316
PEER_GROWTH_200_CHECKPOINTS = 7_700


def _block() -> None:
    chain.pending_timestamp += 12


def measure() -> tuple[list[dict], dict]:
    test = accounts.test_accounts
    deployer, proposer, relayer = test[0], test[1], test[2]
    voters = test[3:9]
    system = deploy_system(project, deployer)
    g, token, escrow = system.governor, system.token, system.escrow
    # Six voters with 8M each (quorum 4% of 1B = 40M: the fifth vote reaches it).
    token.transfer(proposer, 200_000 * TOKEN, sender=deployer)
    token.invoke_transaction("delegate", proposer, sender=proposer)
    for voter in voters:
        token.transfer(voter, 8_000_000 * TOKEN, sender=deployer)
        token.invoke_transaction("delegate", voter, sender=voter)
    # The last voter builds a history of 200 vote checkpoints.
    heavy = voters[-1]
    for _ in range(100):
        _block()
        token.transfer(deployer, TOKEN, sender=heavy)
        _block()
        token.transfer(heavy, TOKEN, sender=deployer)
    chain.pending_timestamp += 60
    chain.mine()

    rows: list[dict] = []

    def run(label: str, send) -> object:
        _block()
        receipt = send()
        rows.append(gas_row(label, receipt, PEER.get(label)))
        return receipt

    def fee(bps):
        return call(escrow, "set_parameter", 0, bps)

    def propose_one(bps, label="propose (1 action)"):
        proposal = Proposal([fee(bps)], f"Fee to {bps} bps")
        receipt = run(label, lambda: g.propose(*proposal.propose_args(), sender=proposer))
        assert receipt.return_value == proposal
        return proposal

    first = propose_one(300)
    chain.pending_timestamp = g.proposalSnapshot(first) + 1
    run("castVote, first voter", lambda: g.castVote(first, FOR, sender=voters[0]))
    run("castVote, later voter", lambda: g.castVote(first, FOR, sender=voters[1]))
    signature = sign_ballot(
        voters[2].private_key,
        chain_id=chain.chain_id,
        governor=g.address,
        proposal_id=first,
        support=FOR,
        voter=voters[2].address,
        nonce=0,
    )
    run(
        "castVoteBySig",
        lambda: g.castVoteBySig(first, FOR, voters[2], signature, sender=relayer),
    )
    run("castVote, 200 checkpoints", lambda: g.castVote(first, FOR, sender=heavy))
    # The fifth vote reaches quorum, in the last hour: the deadline moves.
    chain.pending_timestamp = g.proposalDeadline(first) - 3_600
    run(
        "castVote reaching quorum late (extends)",
        lambda: g.castVote(first, FOR, sender=voters[3]),
    )
    chain.pending_timestamp = g.proposalDeadline(first) + 1
    run("queue", lambda: g.queue(*first.args(), sender=relayer))
    chain.pending_timestamp = g.proposalEta(first)
    run("execute (1 action, a store)", lambda: g.execute(*first.args(), sender=relayer))

    # A second proposal: voters who voted before pay no new receipt word.
    second = propose_one(200, "propose (1 action), proposer's second")
    chain.pending_timestamp = g.proposalSnapshot(second) + 1
    run("castVote, voter who voted before", lambda: g.castVote(second, FOR, sender=voters[1]))
    growth = {
        "ours": next(r for r in rows if r["operation"] == "castVote, 200 checkpoints")[
            "above_intrinsic"
        ]
        - next(r for r in rows if r["operation"] == "castVote, later voter")["above_intrinsic"],
        "peer": PEER_GROWTH_200_CHECKPOINTS,
    }
    lifecycle = [next(r for r in rows if r["operation"] == label) for label in LIFECYCLE]
    above = sum(r["above_intrinsic"] for r in lifecycle)
    used = sum(r["gas_used"] for r in lifecycle)
    # Both governors take the same calls with the same calldata, so the peer's gasUsed is
    # its figure above intrinsic plus the same intrinsic and calldata gas as ours.
    growth["lifecycle"] = (above, PEER_LIFECYCLE, used, PEER_LIFECYCLE + used - above)
    return rows, growth


@click.command(cls=ConnectedProviderCommand)
def cli():
    """Print the Governor + Timelock gas table."""
    rows, growth = measure()
    click.echo(format_table(rows, ["operation", "gas_used", "above_intrinsic", "peer", "vs_peer"]))
    click.echo(
        f"castVote growth with 200 checkpoints: ours {growth['ours']:+,}, "
        f"peer about {growth['peer']:+,}"
    )
    above, peer_above, used, peer_used = growth["lifecycle"]
    click.echo(
        f"lifecycle (propose, 3 votes, queue, execute): above intrinsic {above:,} vs peer "
        f"{peer_above:,} ({(above - peer_above) / peer_above:+.1%}); gasUsed {used:,} vs peer "
        f"{peer_used:,} ({(used - peer_used) / peer_used:+.1%})"
    )

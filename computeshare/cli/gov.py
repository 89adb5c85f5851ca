"""`computeshare gov`: proposals, votes, the timelock, and rehearsals on a fork."""

from __future__ import annotations

import click

from computeshare.cli.common import (
    chain_now,
    command,
    connect,
    send,
    show,
    step,
    table,
    tokens,
    warn,
    when,
)
from computeshare.constants import ProposalState, Support
from computeshare.governance import call, proposal_args
from computeshare.params import parameter

SUPPORT = {support.name.lower(): support for support in Support}


@click.group()
def gov():
    """Propose, vote, queue and execute."""


proposal_options = [
    click.option("--set", "settings", multiple=True, help="Contract.PARAMETER=value (repeatable)"),
    click.option("--grant", nargs=2, multiple=True, help="RECIPIENT AMOUNT: pay from the treasury"),
    click.option("--description", required=True),
]


def with_proposal_options(func):
    for option in reversed(proposal_options):
        func = option(func)
    return func


def proposal_actions(cs, settings, grant) -> list:
    """The actions of `--set` and `--grant`, with every value checked against its bounds."""
    from computeshare.deploy import parse_value

    actions = []
    for setting in settings:
        target, _, value = setting.partition("=")
        contract, _, name = target.partition(".")
        p = parameter(contract, name)
        amount = p.check(parse_value(value))
        actions.append(call(cs.contract(p.contract), "set_parameter", p.key, amount))
    granted = 0
    for recipient, amount in grant:
        granted += tokens(amount)
        actions.append(call(cs.token, "transfer", recipient, tokens(amount)))
    if granted:
        # A grant the treasury cannot pay would pass the vote and then fail at execution.
        treasury = cs.token.balanceOf(cs.timelock)
        if granted > treasury:
            raise click.ClickException(
                f"the grants total {show(granted)} tokens; the treasury holds {show(treasury)}"
            )
    if not actions:
        raise click.UsageError("nothing to propose: give --set or --grant")
    return actions


@command(gov, "propose")
@with_proposal_options
def gov_propose(account, manifest, settings, grant, description):
    """Propose parameter changes and treasury grants (bounds are checked before sending)."""
    cs = connect(manifest, account)
    actions = proposal_actions(cs, settings, grant)
    votes = cs.token.getVotes(account)
    threshold = cs.governor.proposalThreshold()
    if votes < threshold:
        hint = " (delegate your tokens first: `computeshare token delegate`)" if votes == 0 else ""
        raise click.ClickException(
            f"you have {show(votes)} votes; proposing needs {show(threshold)}{hint}"
        )
    # The Governor counts the votes held a second before the proposal's block.
    if cs.token.getPastVotes(account, chain_now() - 1) < threshold:
        raise click.ClickException(
            "your votes were delegated in the latest block and count from the next second: "
            "propose again in a moment"
        )
    receipt = send(
        "proposing", cs.governor.propose, *proposal_args(actions, description), sender=account
    )
    proposal_id = receipt.return_value
    click.echo(
        f"voting opens {when(cs.governor.proposalSnapshot(proposal_id), chain_now())}, "
        "with the votes delegated at that time"
    )
    click.echo(f"proposal {proposal_id}")


@command(gov, "rehearse", signer=False)
@with_proposal_options
@click.option(
    "--voter",
    "voters",
    multiple=True,
    help="holder who proposes and votes for (repeatable; default: the initial token holder)",
)
def gov_rehearse(manifest, settings, grant, description, voters):
    """Rehearse a proposal on a fork: propose, vote, queue, wait and execute, then show
    what changed. The upstream network is never touched."""
    from ape import accounts, chain

    from computeshare.governance import rehearse

    if not chain.provider.network.is_fork:
        raise click.ClickException(
            f"rehearse runs on a fork (e.g. --network ethereum:{chain.provider.network.name}"
            "-fork:foundry): it impersonates voters and moves the clock"
        )
    cs = connect(manifest)
    actions = proposal_actions(cs, settings, grant)
    voters = list(voters) or [cs.manifest.initial_holder]
    targets = [setting.partition("=")[0] for setting in settings]
    readers = {target: _parameter_reader(cs, target) for target in targets}
    for recipient, _ in grant:
        readers[f"balance of {recipient}"] = lambda r=recipient: show(cs.token.balanceOf(r))
    before = {what: read() for what, read in readers.items()}
    with step("rehearsing on the fork"):
        rehearse(cs.governor, cs.token, chain, accounts, voters, actions, description)
    click.echo(f"proposal {cs.governor.proposalCount()} executed on the fork")
    for what, read in readers.items():
        click.echo(f"  {what}: {before[what]} -> {read()}")


def _parameter_reader(cs, target: str):
    p = parameter(*target.split(".", 1))
    contract = cs.contract(p.contract)
    return lambda: contract.parameter(p.key)


def _check_exists(cs, proposal_id: int) -> None:
    if proposal_id > cs.governor.proposalCount():
        raise click.ClickException(f"no proposal {proposal_id}")


@command(gov, "vote")
@click.argument("proposal_id", type=click.IntRange(1))
@click.argument("support", type=click.Choice(list(SUPPORT)))
@click.option("--reason", default="")
def gov_vote(account, manifest, proposal_id, support, reason):
    """Vote for, against or abstain on PROPOSAL_ID, with your votes at its snapshot."""
    cs = connect(manifest, account)
    _check_exists(cs, proposal_id)
    state = ProposalState(cs.governor.state(proposal_id))
    if state != ProposalState.ACTIVE:
        raise click.ClickException(f"proposal {proposal_id} is {state.label}, not Active")
    if cs.governor.hasVoted(proposal_id, account):
        raise click.ClickException(f"{account.address} already voted on proposal {proposal_id}")
    snapshot = cs.governor.proposalSnapshot(proposal_id)
    weight = cs.token.getPastVotes(account, snapshot)
    if weight == 0:
        warn(
            f"you had 0 votes at the proposal's snapshot ({when(snapshot, chain_now())}): this "
            "vote counts nothing. Delegate (`computeshare token delegate`) before a snapshot."
        )
    send("voting", cs.vote, proposal_id, SUPPORT[support], reason)
    click.echo(f"voted {support} on {proposal_id} with {show(weight)} votes")


def _state(cs, proposal_id: int) -> ProposalState:
    return ProposalState(cs.governor.state(proposal_id))


def _gov_step(action: str, want: ProposalState):
    @command(gov, action)
    @click.argument("proposal_id", type=click.IntRange(1))
    def run(account, manifest, proposal_id):
        cs = connect(manifest, account)
        _check_exists(cs, proposal_id)
        state = _state(cs, proposal_id)
        if state != want:
            raise click.ClickException(f"proposal {proposal_id} is {state.label}, not {want.label}")
        if action == "execute":
            eta, now = cs.governor.proposalEta(proposal_id), chain_now()
            if now < eta:
                raise click.ClickException(f"the timelock delay ends {when(eta, now)}")
        send(action, getattr(cs.governor, action), proposal_id, sender=account)
        state = _state(cs, proposal_id)
        eta = cs.governor.proposalEta(proposal_id)
        executable = (
            f", executable {when(eta, chain_now())}" if state == ProposalState.QUEUED else ""
        )
        click.echo(f"proposal {proposal_id}: {state.label}{executable}")

    run.__doc__ = f"{action.capitalize()} a {want.label.lower()} proposal."


_gov_step("queue", ProposalState.SUCCEEDED)
_gov_step("execute", ProposalState.QUEUED)


@command(gov, "status", signer=False)
@click.argument("proposal_id", type=click.IntRange(1))
def gov_status(manifest, proposal_id):
    """Show a proposal's state, votes and timeline."""
    cs = connect(manifest)
    _check_exists(cs, proposal_id)
    against, for_, abstain = cs.governor.proposalVotes(proposal_id)
    state = _state(cs, proposal_id)
    if state == ProposalState.PENDING:
        # The quorum is a share of the supply at the snapshot, which is still ahead: the
        # chain cannot look it up yet (a future lookup reverts).
        quorum = "at the snapshot"
    else:
        quorum = show(cs.governor.proposalQuorum(proposal_id))
    table(
        [
            {
                "proposal": proposal_id,
                "state": state.label,
                "for": show(for_),
                "against": show(against),
                "abstain": show(abstain),
                "quorum": quorum,
            }
        ]
    )
    now = chain_now()
    eta = cs.governor.proposalEta(proposal_id)
    click.echo(f"voting opens  {when(cs.governor.proposalSnapshot(proposal_id), now)}")
    click.echo(f"voting closes {when(cs.governor.proposalDeadline(proposal_id), now)}")
    click.echo(f"executable    {when(eta, now) if eta else '- (not queued)'}")

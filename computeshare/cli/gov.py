"""`computeshare gov`: proposals, votes, the timelock, and rehearsals on a fork."""

from __future__ import annotations

import click

from computeshare.cli.common import (
    chain_now,
    command,
    connect,
    hex_id,
    id_prefix,
    say,
    send,
    show,
    step,
    table,
    tokens,
    warn,
    when,
)
from computeshare.cli.read import read_command, send_command
from computeshare.constants import ProposalState, Support
from computeshare.governance import Proposal, call, reserved
from computeshare.params import parameter

SUPPORT = {support.name.lower(): support for support in Support}


@click.group()
def gov():
    """Propose, vote, queue, execute and cancel.

    A proposal is named by its id (OpenZeppelin's `hashProposal`, in hex as `propose`
    prints it; its decimal form works too) or by an unambiguous hex prefix of it."""


proposal_options = [
    click.option("--set", "settings", multiple=True, help="Contract.PARAMETER=value (repeatable)"),
    click.option("--grant", nargs=2, multiple=True, help="RECIPIENT AMOUNT: pay from the treasury"),
    click.option(
        "--description",
        required=True,
        help="what and why; sent with #proposer=<proposer> appended, reserving the proposal",
    ),
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


@send_command(gov, "propose")
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
    # Reserved to the account (`#proposer=` ends the description), so nobody can send the
    # same proposal first, take its id and cancel it (CVE-2023-34234).
    proposal = cs.proposal(actions, description)
    send("proposing", cs.governor.propose, *proposal.propose_args(), sender=account)
    snapshot = cs.governor.proposalSnapshot(proposal)
    say(
        f"voting opens {when(snapshot, chain_now())}, with the votes delegated at that time",
        snapshot=snapshot,
    )
    say(f"proposal {hex_id(proposal)}", proposal=hex_id(proposal))


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
    proposal = Proposal(actions, reserved(description, voters[0]))
    say(f"proposal {hex_id(proposal)} executed on the fork", proposal=hex_id(proposal))
    changes = {what: (before[what], read()) for what, read in readers.items()}
    for what, (was, now) in changes.items():
        say(f"  {what}: {was} -> {now}")
    say(None, changes={what: {"before": was, "after": now} for what, (was, now) in changes.items()})


def _parameter_reader(cs, target: str):
    p = parameter(*target.split(".", 1))
    contract = cs.contract(p.contract)
    return lambda: contract.parameter(p.key)


def proposal_matcher(text: str):
    """What `text` names: a whole decimal id (more than 64 digits: a proposal id is a hash,
    77 or 78 digits), else a hex id or prefix, with or without 0x. A short run of decimal
    digits is a hex prefix like any other ("41874996" starts 0x41874996...)."""
    text = text.strip()
    if text.isdecimal() and len(text) > 64:
        return lambda p: int(p) == int(text)
    prefix = id_prefix(text)
    return lambda p: f"{int(p):064x}".startswith(prefix)


def resolve_proposal(cs, text: str) -> Proposal:
    """The proposal named by `text` (its decimal id, its hex id, or an unambiguous hex
    prefix), rebuilt with its actions from its `ProposalCreated` event."""
    matches = proposal_matcher(text)
    from computeshare.governance import created_proposals

    with step("looking the proposal up"):
        proposals = created_proposals(cs.governor, cs.manifest.block("JobEscrow"))
    found = [proposal for proposal in proposals if matches(proposal)]
    if not found:
        raise click.ClickException(f"no proposal {text}")
    if len(found) > 1:
        raise click.ClickException(
            f"{text} is ambiguous: {len(found)} proposals match; give more digits"
        )
    return found[0]


proposal_argument = click.argument("proposal_text", metavar="PROPOSAL")


@send_command(gov, "vote")
@proposal_argument
@click.argument("support", type=click.Choice(list(SUPPORT)))
@click.option("--reason", default="")
def gov_vote(account, manifest, proposal_text, support, reason):
    """Vote for, against or abstain on PROPOSAL, with your votes at its snapshot."""
    cs = connect(manifest, account)
    proposal_id = int(resolve_proposal(cs, proposal_text))
    state = ProposalState(cs.governor.state(proposal_id))
    if state != ProposalState.ACTIVE:
        raise click.ClickException(f"proposal {hex_id(proposal_id)} is {state.label}, not Active")
    if cs.governor.hasVoted(proposal_id, account):
        raise click.ClickException(
            f"{account.address} already voted on proposal {hex_id(proposal_id)}"
        )
    snapshot = cs.governor.proposalSnapshot(proposal_id)
    weight = cs.token.getPastVotes(account, snapshot)
    if weight == 0:
        warn(
            f"you had 0 votes at the proposal's snapshot ({when(snapshot, chain_now())}): this "
            "vote counts nothing. Delegate (`computeshare token delegate`) before a snapshot."
        )
    send("voting", cs.vote, proposal_id, SUPPORT[support], reason)
    say(
        f"voted {support} on {hex_id(proposal_id)} with {show(weight)} votes",
        proposal=hex_id(proposal_id), support=support, weight=weight,
    )  # fmt: skip


def _state(cs, proposal_id: int) -> ProposalState:
    return ProposalState(cs.governor.state(proposal_id))


_CANCELLABLE = (
    ProposalState.PENDING,
    ProposalState.ACTIVE,
    ProposalState.SUCCEEDED,
    ProposalState.QUEUED,
)


def _gov_step(action: str, want: tuple[ProposalState, ...], doc: str):
    def run(account, manifest, proposal_text):
        cs = connect(manifest, account)
        proposal = resolve_proposal(cs, proposal_text)
        state = _state(cs, proposal)
        if state not in want:
            wanted = " or ".join(w.label for w in want)
            raise click.ClickException(
                f"proposal {hex_id(proposal)} is {state.label}, not {wanted}"
            )
        if action == "execute":
            eta, now = cs.governor.proposalEta(proposal), chain_now()
            if now < eta:
                raise click.ClickException(f"the timelock delay ends {when(eta, now)}")
        send(action, getattr(cs.governor, action), *proposal.args(), sender=account)
        state = _state(cs, proposal)
        eta = cs.governor.proposalEta(proposal)
        executable = (
            f", executable {when(eta, chain_now())}" if state == ProposalState.QUEUED else ""
        )
        say(
            f"proposal {hex_id(proposal)}: {state.label}{executable}",
            proposal=hex_id(proposal), state=state.label, eta=eta,
        )  # fmt: skip

    run.__doc__ = doc  # before the command is made: click reads it then
    return send_command(gov, action)(proposal_argument(run))


_gov_step("queue", (ProposalState.SUCCEEDED,), "Queue a succeeded proposal in the timelock.")
_gov_step("execute", (ProposalState.QUEUED,), "Execute a queued proposal once its delay is over.")
_gov_step(
    "cancel",
    _CANCELLABLE,
    "Cancel a proposal: its proposer while it is pending, or the guardian before it is final.",
)


@read_command(gov, "status")
@proposal_argument
def gov_status(manifest, proposal_text):
    """Show a proposal's state, votes, timeline and actions."""
    cs = connect(manifest)
    proposal = resolve_proposal(cs, proposal_text)
    proposal_id = int(proposal)
    against, for_, abstain = cs.governor.proposalVotes(proposal_id)
    state = _state(cs, proposal_id)
    if state == ProposalState.PENDING:
        # The quorum is a share of the supply at the snapshot, which is still ahead: the
        # chain cannot look it up yet (a future lookup reverts).
        quorum = "at the snapshot"
    else:
        quorum = show(cs.governor.proposalQuorum(proposal_id))
    say(None, proposal=hex_id(proposal_id), state=state.label)
    table(
        [
            {
                "proposal": hex_id(proposal_id),
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
    expiry = cs.governor.proposalExpiry(proposal_id)
    snapshot = cs.governor.proposalSnapshot(proposal_id)
    deadline = cs.governor.proposalDeadline(proposal_id)
    say(f"voting opens  {when(snapshot, now)}", snapshot=snapshot)
    say(f"voting closes {when(deadline, now)}", deadline=deadline)
    say(f"executable    {when(eta, now) if eta else '- (not queued)'}", eta=eta)
    say(f"expires       {when(expiry, now) if expiry else '- (not queued)'}", expiry=expiry)
    say(f"description   {proposal.description}", description=proposal.description)
    actions = [cs.describe_action(action) for action in proposal.actions]
    say("actions", actions=actions)
    for action in actions:
        say(f"  {action['text']}")

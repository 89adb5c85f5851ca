"""One connected deployment: for Python dApps, the CLI, the agent, scripts and tests.

Why one module: `ComputeShare` is the SDK's one facade, one method per market operation
over the same contracts, account and checks (those live in `checks`); its length is its
surface, which users read in one place.

    from computeshare.client import ComputeShare
    cs = ComputeShare.from_manifest("deployments/sepolia-11155111.json", account=me)
    device = cs.register_device(device_spec(), "ipfs://...")
    cs.stake(10_000 * TOKEN)
    job = cs.post_job(encode_spec("sha256-chain", {"seed": "x", "rounds": 1000}),
                      job_requirements(), price=10**18, replicas=3, duration=3600)
    for status in cs.watch_job(job): ...

Contracts are built from the ABIs in the manifest, so no compiler or project is needed;
`computeshare.deploy.deploy_suite` / `deploy_system` return the same class over the
contracts they deployed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computeshare import offers
from computeshare.checks import check_delegation, check_post, checked_address, date
from computeshare.constants import (
    BPS,
    DEVICE_STATUS,
    MAX_SWEEP,
    MAX_UINT,
    DeviceStatus,
    JobStatus,
    Replica,
    ReplicaStatus,
    Role,
    amount_text,
    label,
)
from computeshare.exceptions import (
    ClientError,
    ComputeShareError,
    InsufficientBalance,
    InsufficientStake,
    InvalidInput,
    NoSuchJob,
    NotAllowed,
    WouldRevert,
    WrongState,
)
from computeshare.format import tokens as show
from computeshare.jobs import NO_REPLICA, JobBook, open_phase
from computeshare.manifest import OWNED, Manifest, network_manifest_path
from computeshare.offers import SignedOffer
from computeshare.onchain import ApeChain, Chain, logs, send
from computeshare.onchain import operation_event as _event
from computeshare.params import PARAMETERS, parameter, parameter_rows
from computeshare.results import ResultError, agreed_results, fetch_result, unseal
from computeshare.sandbox import RunResult
from computeshare.signing import device_id

if TYPE_CHECKING:
    from computeshare.governance import Proposal

__all__ = ["ClientError", "ComputeShare", "ComputeShareError"]


def _send_plain(what: str, method, *args, **kwargs):
    return send(method, *args, **kwargs)


class _Deployed:
    """A contract of the deployment as an attribute (`cs.escrow`); None if not deployed."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, cs: ComputeShare | None, owner=None):
        return self if cs is None else cs.contract(self.name)


class ComputeShare:
    """One connected deployment, seen from one account (or read-only without one): the
    contracts by role (`token`, `staking`, `registry`, `escrow`, `escrow_view`, `offers`,
    `job_disputes`,
    and `timelock` and `governor` when governed), its jobs by id (`jobs`), and the calls a
    provider, a client or a voter makes. Tests, benchmarks and scripts get one from
    `computeshare.deploy.deploy_suite` / `deploy_system`; users from a manifest.

    An operation checks everything it can before its first transaction and raises a
    `computeshare.exceptions.ComputeShareError` (one line) instead of sending what would
    revert: its approval and deposit are not sent when the final call would fail.
    Approvals are for exactly what an operation needs unless `approve_max` (on the client,
    or per call) asks for an unlimited one. `say` receives a line for each step a user
    should hear of (an approval, a deposit); `transact(what, method, *args, sender=...)`
    sends each transaction (the CLI shows a progress line and adds gas headroom)."""

    approve_max = False

    token = _Deployed("ComputeToken")
    staking = _Deployed("Staking")
    registry = _Deployed("DeviceRegistry")
    escrow = _Deployed("JobEscrow")
    escrow_view = _Deployed("JobEscrowView")
    offers = _Deployed("OfferBook")
    job_disputes = _Deployed("JobDisputes")
    governor = _Deployed("Governor")
    timelock = _Deployed("Timelock")

    def __init__(
        self, manifest: Manifest, account=None, contracts: dict[str, Any] | None = None,
        chain: Chain | None = None,
    ):  # fmt: skip
        self.manifest = manifest if isinstance(manifest, Manifest) else Manifest(None, manifest)
        self.account = account
        # The connection: ape's (`ApeChain`) unless one is given, e.g. plain JSON-RPC
        # (`computeshare.sender.PlainChain`).
        self.chain: Chain = chain or ApeChain()
        self._contracts: dict[str, Any] = dict(contracts or {})
        self._jobs: JobBook | None = None
        self.index = None  # an EventIndex once `open_index` is called
        self.say: Callable[[str], None] = lambda text: None
        self.transact: Callable[..., Any] = _send_plain

    @property
    def path(self) -> Path | None:
        """Where the manifest was read from, if from a file."""
        return self.manifest.path

    @classmethod
    def from_contracts(cls, contracts: dict[str, Any], account=None) -> ComputeShare:
        """A deployment from contract instances by name (e.g. `ape`'s project contracts)."""
        entries = {name: {"address": str(c.address)} for name, c in contracts.items()}
        return cls(Manifest(None, {"contracts": entries}), account, contracts)

    @classmethod
    def from_manifest(
        cls, path: Path | str, account=None, chain: Chain | None = None
    ) -> ComputeShare:
        """The deployment the manifest at `path` describes, on `chain` (default: ape's)."""
        chain = chain or ApeChain()
        return cls(Manifest.deployment(path, chain.chain_id), account, chain=chain)

    @classmethod
    def connected(cls, account=None, directory: Path | None = None) -> ComputeShare:
        """The deployment on the connected network, from <deployments>/<network>-<chain id>
        (see `computeshare.manifest`). A fork without a deployment of its own
        (`sepolia-fork`) uses its upstream's."""
        from ape import chain

        path = network_manifest_path(chain.provider.network.name, chain.chain_id, directory)
        return cls.from_manifest(path, account)

    def as_account(self, account) -> ComputeShare:
        """The same deployment seen from `account` (contracts and job terms shared)."""
        other = type(self)(self.manifest, account, chain=self.chain)
        other._contracts, other._jobs, other.index = self._contracts, self._jobs, self.index
        other.say, other.transact, other.approve_max = self.say, self.transact, self.approve_max
        return other

    def contract(self, name: str):
        """The deployment's contract `name` (e.g. "JobEscrow"); None if it has none."""
        if name not in self._contracts:
            if not self.manifest.has(name):
                return None
            address, abi = self.manifest.address(name), self.manifest.abi(name)
            self._contracts[name] = self.chain.contract(name, address, abi)
        return self._contracts[name]

    def owned(self) -> list:
        """The contracts whose owner must be the timelock after hand-over."""
        return [self.contract(name) for name in OWNED]

    def open_index(self, where: str | Path | None = None, **options):
        """Opens (creating it if needed) the event index of this deployment: `where` is a
        file or SQLAlchemy URL, by default `<manifest>.sqlite` next to the manifest. From
        then on job look-ups read the index."""
        from computeshare.index import EventIndex  # SQLAlchemy only when an index is used

        if where is None:
            if self.path is None:
                raise ClientError("no index file: this deployment was not read from a file")
            where = EventIndex.default_path(self.path)
        self.index = EventIndex.open(where, self.manifest, self.chain.index_node(), **options)
        self.jobs.index = self.index
        return self.index

    def _sender(self):
        if self.account is None:
            raise ClientError("this action needs an account (--account)")
        return self.account

    def _send(self, what: str, method, *args):
        return self.transact(what, method, *args, sender=self._sender())

    def _simulate(self, method, *args) -> None:
        """Runs the call as the account would send it (eth_call on the pending state);
        raises WouldRevert with the contract's reason if it reverts."""
        try:
            method.call(*args, sender=self._sender())
        except Exception as error:
            reason = self.chain.revert_reason(error)
            if reason is None:
                raise
            raise WouldRevert(reason) from None

    def parameter(self, contract: str, name: str) -> int:
        """The governed parameter `name` of the deployment's `contract` now."""
        return self.contract(contract).parameter(parameter(contract, name).key)

    def parameters(self) -> list[dict]:
        """Every governed parameter of the deployment: its contract, name, key, value now,
        hard bounds, default and unit, and the value as people read it (`text`)."""

        def read(contract_name: str, key: int) -> int | None:
            contract = self.contract(contract_name)
            return None if contract is None else contract.parameter(key)

        return parameter_rows(read)

    def describe_action(self, action) -> dict:
        """A proposal's action decoded against the deployment's ABIs: `contract` (its name,
        or None for an address outside the deployment), `function`, named `args`, and
        `text` for people (amounts in tokens, parameters by name with their value now and
        after: "JobEscrow.PROTOCOL_FEE_BPS: 2.5% (250 bps) -> 1% (100 bps)")."""
        names = {self.manifest.address(n).lower(): n for n in self.manifest.names()}
        name = names.get(str(action.target).lower())
        described = {
            "target": action.target,
            "contract": name,
            "function": None,
            "args": {},
            "value": action.value,
            "text": f"call {action.target} 0x{bytes(action.calldata).hex()}",
        }
        if name is None:
            return described
        try:
            signature, args = self.contract(name).decode_input(bytes(action.calldata))
        except Exception:  # calldata that matches no function of the ABI
            described["text"] = f"{name}: undecodable call 0x{bytes(action.calldata)[:4].hex()}"
            return described
        function = signature.split("(")[0].split(" ")[-1]
        args = dict(args)
        described.update(contract=name, function=function, args=args)
        table = PARAMETERS.get(name, {})
        if function == "set_parameter" and len(args) == 2:
            key, new = args.values()
            known = next((p for p in table.values() if p.key == key), None)
            if known is not None:
                before = self.contract(name).parameter(key)
                described.update(parameter=known.name, before=before, after=new)
                described["text"] = (
                    f"{name}.{known.name}: {known.format(before)} -> {known.format(new)}"
                )
                return described
        shown = ", ".join(f"{k}={_argument_text(k, v)}" for k, v in args.items())
        value = f" with {action.value} wei" if action.value else ""
        described["text"] = f"{name}.{function}({shown}){value}"
        return described

    def _require(self, have: int, need: int, what: str) -> None:
        """Raises InsufficientBalance `<what> is <have> tokens` when `have` < `need`."""
        if have < need:
            raise InsufficientBalance(
                f"{what} is {show(have)} tokens", what=what, have=have, need=need
            )

    def _approve(self, spender, name: str, amount: int, unlimited: bool | None) -> None:
        """Lets `spender` take `amount` of the account's tokens, unless its allowance
        already covers it: exactly `amount`, or an unlimited amount with `unlimited`
        (default: the client's `approve_max`)."""
        me = self._sender()
        if self.token.allowance(me, spender) >= amount:
            return
        value = MAX_UINT if (self.approve_max if unlimited is None else unlimited) else amount
        self.say(f"approving {name} to spend {amount_text(value)} tokens")
        self._send("approval", self.token.approve, spender, value)

    def _fund(self, missing: int, unlimited: bool | None) -> None:
        """Deposits `missing` tokens into the escrow balance (checked to be held)."""
        self._approve(self.escrow, "JobEscrow", missing, unlimited)
        self.say(f"depositing {show(missing)} tokens into your escrow balance")
        self._send("deposit", self.escrow.deposit, missing)

    def fund_escrow(self, needed: int, *, approve_max: bool | None = None) -> int:
        """Deposits what the account's escrow balance lacks of `needed` (for a call that
        pays from it, e.g. `OfferBook.match_offer`); returns the amount deposited."""
        missing = needed - self.escrow.balanceOf(self._sender())
        if missing <= 0:
            return 0
        self._require(self.token.balanceOf(self._sender()), missing, "balance")
        self._fund(missing, approve_max)
        return missing

    # -- providers

    def register_device(self, spec: dict, metadata_uri: str) -> bytes:
        """Registers a device of the account's (it needs bonded stake of
        MIN_STAKE_PER_DEVICE for each active device, this one included); returns its id."""
        me = self._sender()
        spec = dict(spec)
        model = spec.get("gpu_model", b"")
        model = model.encode() if isinstance(model, str) else bytes(model)
        if len(model.rstrip(b"\x00")) > 32:
            raise InvalidInput("gpu_model: at most 32 bytes")
        spec["gpu_model"] = model.rstrip(b"\x00").ljust(32, b"\x00")
        per_device = self.parameter("DeviceRegistry", "MIN_STAKE_PER_DEVICE")
        needed = per_device * (self.registry.active_devices(me) + 1)
        if self.staking.bonded_stake(me) < needed:
            raise InsufficientStake(
                f"stake {show(needed)} tokens first: each active device needs {show(per_device)}",
                what="bonded stake",
                have=self.staking.bonded_stake(me),
                need=needed,
            )
        self._simulate(self.registry.register, spec, metadata_uri)
        receipt = self._send("registering the device", self.registry.register, spec, metadata_uri)
        registered = _event(receipt, self.registry, "DeviceRegistered", owner=me.address)
        return bytes(registered["device_id"])

    def stake(self, amount: int, *, approve_max: bool | None = None):
        """Bonds `amount` of the account's tokens as its own stake (approving Staking)."""
        me = self._sender()
        self._require(self.token.balanceOf(me), amount, "balance")
        minimum = self.parameter("Staking", "MIN_PROVIDER_STAKE")
        own = self.staking.pool(me).own_stake
        if own + amount < minimum:
            raise InvalidInput(
                f"your own stake would be {show(own + amount)} tokens;"
                f" the minimum is {show(minimum)}"
            )
        self._approve(self.staking, "Staking", amount, approve_max)
        return self._send("staking", self.staking.stake, amount)

    def thaw(self, amount: int):
        """Starts thawing `amount` of the account's free own stake (not locked as
        collateral); it is withdrawable after the thawing period."""
        self._require(self.staking.free_stake(self._sender()), amount, "free stake")
        return self._send("thawing", self.staking.request_thaw, amount)

    def withdraw_stake(self) -> int:
        """Withdraws the account's own stake whose thawing period has passed; returns it."""
        pool = self.staking.pool(self._sender())
        if pool.own_thawing == 0:
            raise WrongState("nothing is thawing (thaw first)")
        if self.chain.now() < pool.own_unlock_at:
            raise WrongState(f"{show(pool.own_thawing)} tokens unlock {date(pool.own_unlock_at)}")
        self._send("withdrawing", self.staking.withdraw)
        return pool.own_thawing

    def cancel_thaw(self) -> dict:
        """Bonds the account's whole thawing own stake again; returns what `ThawCancelled`
        says (`amount`, the new `own_stake`)."""
        if self.staking.pool(self._sender()).own_thawing == 0:
            raise WrongState("nothing is thawing (thaw first)")
        receipt = self._send("cancelling the thaw", self.staking.cancel_thaw)
        return _event(receipt, self.staking, "ThawCancelled")

    def set_delegator_cut(self, cut_bps: int) -> dict:
        """Sets the share of the account's income that goes to its delegators, in basis
        points: at once without delegators, else after CUT_CHANGE_DELAY (so they can leave
        first). Returns what `DelegatorCutScheduled` says (`provider`, `cut_bps`,
        `effective_at`)."""
        if not 0 <= cut_bps <= BPS:
            raise InvalidInput(f"a cut of {cut_bps} bps is above 100% ({BPS} bps)")
        self._sender()
        receipt = self._send("setting the cut", self.staking.set_delegator_cut, cut_bps)
        return _event(receipt, self.staking, "DelegatorCutScheduled")

    def update_device(
        self, device_id: bytes, changes: dict | None = None, metadata_uri: str | None = None
    ) -> dict:
        """Changes the spec fields in `changes` (DeviceRegistry.Spec's names) and, unless
        None, the metadata URI of one of the account's devices; every other field keeps its
        value. A device left without GPUs loses its GPU model and VRAM. Returns what
        `DeviceUpdated` says (`device_id`, `owner`, `spec` as a dict, `metadata_uri`) with
        `changed`: each changed field's (before, after)."""
        me, device_id = self._sender(), bytes(device_id)
        device = self.registry.device(device_id)
        if int(device.owner, 16) == 0:
            raise InvalidInput(f"no device 0x{device_id.hex()}")
        if device.owner != me.address:
            raise NotAllowed(f"device 0x{device_id.hex()} is not yours")
        if device.status == DeviceStatus.RETIRED:
            raise WrongState(f"device 0x{device_id.hex()} is retired")
        current = _spec_dict(device.spec)
        spec = dict(current)
        for name, value in (changes or {}).items():
            if name not in current:
                raise InvalidInput(f"a device spec has no field {name!r}")
            if name == "gpu_model":
                value = value.encode() if isinstance(value, str) else bytes(value)
                if len(value.rstrip(b"\x00")) > 32:
                    raise InvalidInput("gpu_model: at most 32 bytes")
                value = value.rstrip(b"\x00").ljust(32, b"\x00")
            spec[name] = value
        if spec["gpu_count"] == 0:
            spec["gpu_model"], spec["vram_mb"] = b"\x00" * 32, 0
        elif current["gpu_count"] == 0 and (
            not spec["gpu_model"].strip(b"\x00") or not spec["vram_mb"]
        ):
            raise InvalidInput("a device gaining GPUs needs their gpu_model and vram_mb too")
        uri = device.metadata_uri if metadata_uri is None else metadata_uri
        changed = {
            name: (current[name], spec[name]) for name in spec if spec[name] != current[name]
        }
        if uri != device.metadata_uri:
            changed["metadata_uri"] = (device.metadata_uri, uri)
        if not changed:
            raise InvalidInput(f"nothing to change: device 0x{device_id.hex()} has that spec")
        self._simulate(self.registry.update, device_id, spec, uri)
        receipt = self._send("updating the device", self.registry.update, device_id, spec, uri)
        event = _event(receipt, self.registry, "DeviceUpdated")
        event["spec"] = _spec_dict(event["spec"])
        event["changed"] = changed
        return event

    def set_device_status(self, device_id: bytes, action: str) -> dict:
        """`action` ("pause", "resume" or "retire") on one of the account's devices:
        pause an active one, resume a paused one, retire either for good. Returns what
        `DeviceStatusChanged` says (`device_id`, `owner`, `previous_status`,
        `new_status`, `active_devices`)."""
        me, device_id = self._sender(), bytes(device_id)
        if action not in DEVICE_ACTIONS:
            raise InvalidInput(f"a device is paused, resumed or retired, not {action!r}d")
        device = self.registry.device(device_id)
        if int(device.owner, 16) == 0:
            raise InvalidInput(f"no device 0x{device_id.hex()}")
        if device.owner != me.address:
            raise NotAllowed(f"device 0x{device_id.hex()} is not yours")
        status = DEVICE_STATUS.get(int(device.status), f"in status {device.status}")
        if status not in DEVICE_ACTIONS[action]:
            raise WrongState(f"device 0x{device_id.hex()} is {status}: it cannot be {action}d")
        method = getattr(self.registry, action)
        receipt = self._send(f"{action} device", method, device_id)
        return _event(receipt, self.registry, "DeviceStatusChanged")

    def devices_of(self, owner: str) -> list[tuple[bytes, Any]]:
        """`owner`'s devices, by registration nonce: (id, record)."""
        ids = (device_id(owner, n) for n in range(self.registry.device_count(owner)))
        return [(device, self.registry.device(device)) for device in ids]

    def device_nonce(self, owner: str, device: bytes) -> int:
        """The registration nonce of `owner`'s device `device`: its id is
        keccak256(owner, nonce), so one read of the owner's device count and local hashes
        find it. NotAllowed if the device is not `owner`'s."""
        device = bytes(device)
        for nonce in range(self.registry.device_count(owner)):
            if device_id(owner, nonce) == device:
                return nonce
        raise NotAllowed(f"device 0x{device.hex()[:10]} is not yours")

    # -- delegators

    def delegate(
        self, provider: str, amount: int, *, min_cut: int | None = None,
        approve_max: bool | None = None,
    ) -> int:  # fmt: skip
        """Delegates `amount` of the account's tokens to `provider`'s pool, refusing a
        provider whose delegator cut (in force or scheduled) is below `min_cut` basis
        points (default: its cut now); returns the account's tokens warming up there."""
        me, provider = self._sender(), checked_address(provider)
        min_cut = check_delegation(self, provider, amount, min_cut)
        self._require(self.token.balanceOf(me), amount, "balance")
        if self.token.allowance(me, self.staking) >= amount:
            self._simulate(self.staking.delegate_to, provider, amount, min_cut)
        self._approve(self.staking, "Staking", amount, approve_max)
        self._send("delegating", self.staking.delegate_to, provider, amount, min_cut)
        return self.staking.delegation(provider, me).warming

    def activate(self, provider: str) -> int:
        """Turns the account's warmed-up tokens at `provider` into pool shares; returns
        the shares received."""
        me, provider = self._sender(), checked_address(provider)
        position = self.staking.delegation(provider, me)
        if position.warming == 0:
            raise WrongState("nothing is warming up at this provider")
        if position.warm_until > self.chain.now():
            raise WrongState(f"still warming up: activate {date(position.warm_until)}")
        receipt = self._send("activating", self.staking.activate, provider, me)
        activated = _event(receipt, self.staking, "DelegationActivated", delegator=me.address)
        return activated["shares"]

    def cancel_warmup(self, provider: str) -> dict:
        """Sends the account's tokens warming up at `provider` thawing (slashable until
        withdrawn, as undelegated shares are). Returns what `WarmupCancelled` says
        (`amount`, `thaw_shares`, `unlock_at`)."""
        me, provider = self._sender(), checked_address(provider)
        if self.staking.delegation(provider, me).warming == 0:
            raise WrongState("nothing is warming up at this provider")
        receipt = self._send("cancelling the warm-up", self.staking.cancel_warmup, provider)
        return _event(receipt, self.staking, "WarmupCancelled")

    def withdraw_delegation(self, provider: str) -> int:
        """Withdraws the account's thawed delegation at `provider` once unlocked; returns
        the amount (what `DelegationWithdrawn` says)."""
        me, provider = self._sender(), checked_address(provider)
        position = self.staking.delegation(provider, me)
        if position.thawing == 0:
            raise WrongState("nothing is thawing at this provider (undelegate first)")
        if self.chain.now() < position.unlock_at:
            raise WrongState(
                f"{show(position.thawing)} tokens are still thawing: they unlock "
                f"{date(position.unlock_at)}"
            )
        receipt = self._send("withdrawing", self.staking.withdraw_delegation, provider)
        return _event(receipt, self.staking, "DelegationWithdrawn")["amount"]

    def share_value(self, provider: str, shares: int) -> int:
        """What `shares` of `provider`'s delegation pool are worth now, in wei (Staking's
        rounding: down)."""
        pool = self.staking.pool(provider)
        return shares * (pool.delegated_tokens + 1) // (pool.delegated_shares + VIRTUAL_SHARES)

    def _exit_pool(self, provider: str, me) -> tuple[int, int, int]:
        """(the account's shares, the pool's tokens, its shares) as `undelegate` will find
        them: after it joins the account's warmed-up tokens to the pool, when they fit."""
        pool, position = self.staking.pool(provider), self.staking.delegation(provider, me)
        held, tokens, total = position.shares, pool.delegated_tokens, pool.delegated_shares
        if position.warming and position.warm_until <= self.chain.now():
            cap = pool.own_stake * self.parameter("Staking", "MAX_DELEGATION_RATIO")
            if tokens + position.warming <= cap:
                minted = position.warming * (total + VIRTUAL_SHARES) // (tokens + 1)
                held, tokens, total = held + minted, tokens + position.warming, total + minted
        return held, tokens, total

    def undelegate(
        self, provider: str, shares: int | None = None, *, tokens: int | None = None,
        everything: bool = False,
    ) -> dict:  # fmt: skip
        """Starts thawing part of the account's delegation to `provider`: `shares` (raw
        pool shares), or the most shares worth at most `tokens` wei at the pool's price
        (never more than asked), or `everything`. Returns what `Undelegated` says
        (`shares`, `amount`, `thaw_shares`, `unlock_at`)."""
        me, provider = self._sender(), checked_address(provider)
        if sum((shares is not None, tokens is not None, everything)) != 1:
            raise InvalidInput("give shares, tokens or everything: exactly one")
        held, pool_tokens, total = self._exit_pool(provider, me)
        if held == 0:
            warming = self.staking.delegation(provider, me).warming
            raise WrongState(
                "you hold no shares at this provider"
                + (f" ({show(warming)} tokens are warming up: activate them, or cancel the"
                   " warm-up)" if warming else "")
            )  # fmt: skip
        if everything:
            shares = held
        elif tokens is not None:
            worth = held * (pool_tokens + 1) // (total + VIRTUAL_SHARES)
            if tokens <= 0:
                raise InvalidInput("the amount must be positive")
            if tokens > worth:
                raise InsufficientBalance(
                    f"your delegation is worth {show(worth)} tokens", what="delegation",
                    have=worth, need=tokens,
                )  # fmt: skip
            # The most shares s with s * (T + 1) // (S + V) <= tokens.
            shares = min(held, ((tokens + 1) * (total + VIRTUAL_SHARES) - 1) // (pool_tokens + 1))
        elif not 0 < shares <= held:
            raise InvalidInput(f"you hold {held:,} shares at this provider")
        self._simulate(self.staking.undelegate, provider, shares)
        receipt = self._send("undelegating", self.staking.undelegate, provider, shares)
        return _event(receipt, self.staking, "Undelegated")

    # -- clients

    def deposit(self, amount: int, *, approve_max: bool | None = None):
        """Deposits `amount` of the account's tokens into its JobEscrow balance."""
        self._require(self.token.balanceOf(self._sender()), amount, "balance")
        self._approve(self.escrow, "JobEscrow", amount, approve_max)
        return self._send("depositing", self.escrow.deposit, amount)

    def payout_shard(self, account: str, amount: int) -> int | None:
        """The deposit shard a withdrawal of `amount` by `account` should take its tokens
        from, when JobEscrow keeps deposits in shards: None when the account's own shard
        holds the amount (plain `withdraw`), else the shard of the most recent client
        that paid it and holds the amount, else one of the shards that hold it, picked
        by the account's address (so different withdrawers spread over different
        shards), else None (JobEscrow gathers from several). One call reads every
        shard; the payers come from three `eth_getLogs` requests."""
        from computeshare.jobs import deposit_shard, payers_of

        balances = list(self.escrow_view.shard_balances())
        if not balances or balances[deposit_shard(account)] >= amount:
            return None
        for payer in payers_of(self.escrow, account, self.jobs.start_block):
            if balances[deposit_shard(payer)] >= amount:
                return deposit_shard(payer)
        holding = [shard for shard, balance in enumerate(balances) if balance >= amount]
        if not holding:
            return None
        return holding[int(account, 16) % len(holding)]

    def withdrawal(self, account: str, amount: int) -> tuple:
        """The JobEscrow method and arguments of a withdrawal of `amount` by `account`,
        from the shard `payout_shard` picks (for callers that send it themselves)."""
        shard = self.payout_shard(account, amount)
        if shard is None:
            return self.escrow.withdraw, (amount,)
        return self.escrow.withdraw_from_shard, (amount, shard)

    def withdraw(self, amount: int):
        """Withdraws `amount` of the caller's JobEscrow balance (see `withdrawal`)."""
        me = self._sender()
        method, args = self.withdrawal(me.address, amount)
        self._require(self.escrow.balanceOf(me), amount, "escrow balance")
        return self._send("withdrawing", method, *args)

    def post_job(
        self,
        spec: bytes,
        requirements: dict,
        *,
        price: int,
        replicas: int,
        duration: int,
        collateral: int | None = None,
        approve_max: bool | None = None,
    ) -> bytes:
        """Posts a job whose commit deadline is `duration` seconds away, depositing what the
        escrow balance lacks of `price * replicas` first; returns its id. Everything
        JobEscrow would refuse is refused here first (`computeshare.checks.check_post`)."""
        me = self._sender()
        collateral = price if collateral is None else collateral
        check_post(self, spec, requirements, price, replicas, duration, collateral)
        missing = price * replicas - self.escrow.balanceOf(me)
        if missing > 0:
            held = self.token.balanceOf(me)
            if held < missing:
                raise InsufficientBalance(
                    f"the job needs {show(missing)} tokens more than your escrow balance holds;"
                    f" your balance is {show(held)}",
                    what="balance",
                    have=held,
                    need=missing,
                )
        deadline = self.chain.now() + duration
        args = (spec, requirements, price, replicas, deadline, collateral)
        if missing > 0:
            self._fund(missing, approve_max)
        else:
            self._simulate(self.escrow.post, *args)
        receipt = self._send("posting the job", self.escrow.post, *args)
        posted = _event(receipt, self.escrow, "JobPosted", client=me.address)
        return bytes(posted["job_id"])

    def own_job(self, job_id: bytes):
        """The terms of the account's job `job_id`; NoSuchJob or NotAllowed if it is not."""
        job_id = bytes(job_id)
        try:
            terms = self.jobs.terms(job_id)
        except LookupError as error:
            raise NoSuchJob(str(error)) from None
        if terms.client != self._sender().address:
            raise NotAllowed(f"job 0x{job_id.hex()} is not your job")
        return terms

    def cancel_job(self, job_id: bytes) -> int:
        """Cancels the account's job that no provider accepted; returns the refund (the
        whole payment, back to the escrow balance)."""
        terms = self.own_job(job_id)
        view = self.job(job_id)
        if view["status"] != JobStatus.OPEN:
            raise WrongState(f"job 0x{bytes(job_id).hex()[:10]} is {view['status_name']}")
        if view["accepted"]:
            raise WrongState(f"job 0x{bytes(job_id).hex()[:10]} is accepted: it runs to the end")
        self._send("cancelling", self.escrow.cancel, terms)
        return terms.price_per_replica * terms.replicas

    def expire_job(self, job_id: bytes) -> dict:
        """Settles an open job past its reveal window (a k = 1 result past its challenge
        window): missing and failed replicas are refunded, providers that did not reveal
        slashed, a revealed result paid. Anyone may; the caller earns the keeper bounty.
        Returns what `JobSettled` says; a k > 1 job whose revealed results do not agree
        goes to the arbiter instead: then `{"disputed": <Disputed's arguments>}`."""
        self._sender()
        job_id = bytes(job_id)
        try:
            self.jobs.terms(job_id)
        except LookupError as error:
            raise NoSuchJob(str(error)) from None
        view, now = self.job(job_id), self.chain.now()
        if view["status"] != JobStatus.OPEN:
            raise WrongState(f"job 0x{job_id.hex()} is {view['status_name']}, not open")
        if now < view["phase_end"]:
            raise WrongState(f"not yet: {open_phase(view, now)}")
        receipt = self._send("settling", self.jobs.expire, job_id)
        try:
            return _event(receipt, self.escrow, "JobSettled", job_id=job_id)
        except ComputeShareError:  # k > 1 results that disagree: the arbiter's now
            return {"disputed": _event(receipt, self.escrow, "Disputed", job_id=job_id)}

    def dispute(self, job_id: bytes, *, approve_max: bool | None = None) -> int:
        """Disputes the revealed result of the account's k = 1 job within its challenge
        window, locking a bond of DISPUTE_BOND_BPS of the price in JobDisputes, from the
        account's wallet (approving it first); returns the bond. The bond comes back
        with a ruling for the client, or unruled (`reclaim_bond`), to withdraw from
        JobDisputes (`withdraw_bonds`)."""
        me, job_id = self._sender(), bytes(job_id)
        terms = self.own_job(job_id)
        if terms.replicas != 1:
            raise WrongState("only optimistic (k = 1) jobs are disputed; replicas that disagree"
                             " go to the arbiter by themselves")  # fmt: skip
        view = self.job(job_id)
        if view["status"] != JobStatus.OPEN:
            raise WrongState(f"job 0x{job_id.hex()[:10]} is {view['status_name']}")
        if view["replica_states"] != ["revealed"]:
            raise WrongState(f"job 0x{job_id.hex()[:10]} has no result to dispute yet")
        if self.chain.now() >= view["phase_end"]:
            raise WrongState(f"the challenge window closed at {date(view['phase_end'])}")
        bond = terms.price_per_replica * self.parameter("JobEscrow", "DISPUTE_BOND_BPS") // BPS
        held = self.token.balanceOf(me)
        if held < bond:
            raise InsufficientBalance(
                f"the dispute bond is {show(bond)} tokens; your balance is {show(held)}",
                what="balance", have=held, need=bond,
            )  # fmt: skip
        self._approve(self.job_disputes, "JobDisputes", bond, approve_max)
        self._send("disputing", self.job_disputes.dispute, terms)
        return bond

    def reclaim_bond(self, job_id: bytes) -> int:
        """Returns the bond of the account's dispute the arbiter did not rule on in time
        (the job settled with its result standing) to its JobDisputes balance; returns it."""
        job_id = bytes(job_id)
        terms = self.own_job(job_id)
        bond = self.job_disputes.bond(job_id)
        if bond == 0:
            raise WrongState(f"job 0x{job_id.hex()[:10]} has no bond to reclaim")
        if self.jobs.view(job_id).status != JobStatus.FINALIZED:
            raise WrongState(f"job 0x{job_id.hex()[:10]} is not settled yet: finalize it first")
        self._send("reclaiming the bond", self.job_disputes.reclaim, terms)
        return bond

    def withdraw_bonds(self) -> int:
        """Withdraws the bonds released to the account in JobDisputes; returns the amount."""
        amount = self.job_disputes.balanceOf(self._sender())
        if amount == 0:
            raise WrongState("no bonds to withdraw")
        self._send("withdrawing bonds", self.job_disputes.withdraw)
        return amount

    @property
    def jobs(self) -> JobBook:
        """JobEscrow's job calls by job id; terms are read from the escrow's events."""
        if self._jobs is None:
            start = self.manifest.block("JobEscrow")
            self._jobs = JobBook(
                self.escrow, self.escrow_view, start_block=start, disputes=self.job_disputes
            )
        return self._jobs

    def job(self, job_id: bytes) -> dict:
        """The job's terms and state, with status and replica states named."""
        view = vars(self.jobs.view(job_id))
        view["status_name"] = label(JobStatus, view["status"])
        view["replica_states"] = [
            label(ReplicaStatus, self.escrow_view.assignment(job_id, slot).status)
            for slot in range(view["accepted"])
        ]
        return view

    def watch_job(self, job_id: bytes, poll: float = 1.0, timeout: float = 600) -> Iterator[dict]:
        """Yields the job's view whenever it changes, until it is final or `timeout` passes."""
        last, end = None, time.monotonic() + timeout
        while time.monotonic() < end:
            view = self.job(job_id)
            key = (view["status"], tuple(view["replica_states"]))
            if key != last:
                last = key
                yield view
            if view["status"] in (JobStatus.FINALIZED, JobStatus.CANCELLED):
                return
            time.sleep(poll)

    def _result_endpoints(self, job_id: bytes, revealed: list | None = None) -> list[str]:
        """The http(s) metadata URIs of the devices that revealed the job's result."""
        escrow, start, where = self.escrow, self.jobs.start_block, ["0x" + bytes(job_id).hex()]
        if revealed is None:
            revealed = logs(escrow, ["ResultRevealed"], start, where)
        providers = {event.event_arguments["provider"] for event in revealed}
        accepted = logs(escrow, ["ReplicaAccepted"], start, where)
        uris = [
            self.registry.device(bytes(event.device_id)).metadata_uri
            for event in accepted
            if event.event_arguments["provider"] in providers
        ]
        return [uri for uri in uris if uri.startswith(("http://", "https://"))]

    def output_files(
        self,
        job_id: bytes,
        result: RunResult,
        directory: Path,
        endpoints: list[str] | None = None,
        cache: Path | None = None,
        max_size: int = 1 << 36,
        private_key: bytes | None = None,
    ) -> Path:
        """Writes the files of a result's output tree (`result` from `result`, so its root
        is checked against the chain) into `directory`: fetched from every replica that
        serves it at once, each chunk verified against the root, resumable (`cache`, by
        default ~/.computeshare/downloads). An encrypted job's replicas serve its root
        encrypted to the spec's key: `private_key` reads it."""
        from computeshare import cas, fetch

        if not result.output_root:
            raise ResultError("this result has no output files (its output is its stdout)")
        root = result.output_root.hex()
        sources, sizes = [], set()
        for endpoint in endpoints or self._result_endpoints(job_id):
            url = f"{endpoint.rstrip('/')}/results/0x{bytes(job_id).hex()}"
            try:
                answer = json.loads(fetch.get(url, 1 << 20, 10))
            except (fetch.FetchError, ValueError):
                continue
            if not isinstance(answer, dict):
                continue
            served = answer.get("output_root")
            if answer.get("encrypted") and private_key is not None and isinstance(served, str):
                try:
                    served = unseal(private_key, bytes.fromhex(served)).hex()
                except (ResultError, ValueError):
                    continue
            if served == root:
                sizes.add(answer.get("output_size"))
                sources.append(f"{endpoint.rstrip('/')}/cas/")
        if not sources:
            raise ResultError("no replica of this job serves its output files")
        store = cas.Cache(cache or Path("~/.computeshare/downloads").expanduser())
        problems = []
        for size in sizes:  # a lying replica's size fails every chunk; the true one verifies
            if not isinstance(size, int) or isinstance(size, bool):
                continue
            try:
                path = cas.fetch_tree(root, size, sources, store, max_size=max_size, spread=True)
            except cas.CasError as error:
                problems.append(str(error))
                continue
            directory.mkdir(parents=True, exist_ok=True)
            cas.unpack(cas.open_pack(path), directory)
            return directory
        raise ResultError("; ".join(problems) or "no replica gave the output tree's size")

    def result(
        self, job_id: bytes, endpoints: list[str] | None = None, private_key: bytes | None = None
    ) -> RunResult:
        """The job's whole result (status, fuel, output), checked against the chain: the
        settled result once final, else an agreed revealed one (`agreed_results`). A short
        k = 1 output is read from its `ResultSubmitted` event; any other from a provider's
        agent. Endpoints default to the http(s) metadata URIs of the devices that revealed;
        `private_key` reads an output encrypted to the spec's `encrypt_to`."""
        job_id = bytes(job_id)
        escrow, start, where = self.escrow, self.jobs.start_block, ["0x" + job_id.hex()]
        found = logs(escrow, ["JobSettled", "ResultRevealed", "ResultSubmitted"], start, where)
        settled = [event for event in found if event.event_name == "JobSettled"]
        revealed = [event for event in found if event.event_name == "ResultRevealed"]
        agreed = agreed_results(
            bytes(settled[0].result_hash) if settled else None,
            [bytes(event.result_hash) for event in revealed],
            self.jobs.terms(job_id).replicas,
        )
        for event in (event for event in found if event.event_name == "ResultSubmitted"):
            on_chain = RunResult(event.status, event.fuel, bytes(event.output))
            if event.output and on_chain.digest() in agreed:
                return on_chain  # a short k = 1 output travels in its event
        endpoints = endpoints or self._result_endpoints(job_id, revealed)
        problems = []
        for endpoint in endpoints:
            try:
                return fetch_result(endpoint, job_id, agreed, private_key)
            except ResultError as error:
                problems.append(str(error))
        raise ResultError("; ".join(problems) or "no provider of this job serves results")

    def sweep_fees(self) -> int:
        """Sweeps the protocol fees every device accrued to the treasury (anyone may), up to
        `MAX_SWEEP` devices a transaction; returns the amount swept."""
        from computeshare.jobs import devices_with_fees

        self._sender()
        devices = devices_with_fees(self.escrow, self.jobs.start_block)
        batches = (devices[i : i + MAX_SWEEP] for i in range(0, len(devices), MAX_SWEEP))
        receipts = (self._send("sweeping fees", self.escrow.sweep_fees, b) for b in batches)
        return sum(_event(r, self.escrow, "FeesSwept")["amount"] for r in receipts)

    # -- offers (`computeshare.offers`)

    def sign_offer(self, client: str, price: int, **terms) -> SignedOffer:
        """Signs an offer of the account's device to `client` (nothing is sent); see
        `computeshare.offers.sign_offer` for the terms."""
        return offers.sign_offer(self, client, price, **terms)

    def match_offer(self, offer: dict | Path | str, spec: bytes, **options) -> dict:
        """Posts a k = 1 job through a signed offer; see `computeshare.offers.match_offer`."""
        return offers.match_offer(self, offer, spec, **options)

    def cancel_offer(self, nonce: int) -> dict:
        """Cancels the account's unused offer with `nonce`; returns `OfferCancelled`'s
        arguments."""
        return offers.cancel_offer(self, nonce)

    def offer_history(self, provider: str | None = None, client: str | None = None) -> list:
        """Matched and cancelled offers; see `computeshare.offers.offer_history`."""
        return offers.offer_history(self, provider, client)

    # -- arbiters

    def is_arbiter(self, address: str) -> bool:
        """Whether `address` holds JobDisputes' ARBITER role."""
        return bool(int(self.job_disputes.roles(address)) & Role.ARBITER)

    def rule(
        self, job_id: bytes, *, for_client: bool | None = None, slot: int | None = None,
        result: bytes | None = None,
    ) -> dict:  # fmt: skip
        """The arbiter's ruling on a disputed job within its ruling period, which settles
        it. k = 1: `for_client` (the result was wrong: the provider is slashed) or not.
        k > 1: the right result, as the `slot` that revealed it or its `result` hash;
        replicas that revealed it are paid, the others slashed. Returns `Ruled`'s
        arguments with `result` (k > 1) and `settled`: what `JobSettled` says."""
        me, job_id = self._sender(), bytes(job_id)
        try:
            terms = self.jobs.terms(job_id)
        except LookupError as error:
            raise NoSuchJob(str(error)) from None
        view = self.jobs.view(job_id)
        if view.status != JobStatus.DISPUTED:
            raise WrongState(
                f"job 0x{job_id.hex()[:10]} is {label(JobStatus, view.status)}, not disputed"
            )
        if self.chain.now() >= view.phase_end:
            raise WrongState(f"the ruling period ended {date(view.phase_end)}: finalize settles it")
        if not self.is_arbiter(me.address):
            raise NotAllowed(f"{me.address} is not an arbiter of this deployment")
        if terms.replicas == 1:
            if for_client is None:
                raise InvalidInput("a k = 1 ruling is for the client or for the provider")
            replica = self.jobs.settlement_replica(job_id)
        else:
            revealed = self.jobs.revealed(job_id)
            if slot is not None:
                if slot not in revealed:
                    shown = ", ".join(map(str, sorted(revealed))) or "none"
                    raise InvalidInput(
                        f"no slot {slot} revealed a result (slots that did: {shown})"
                    )
                result = revealed[slot]
            elif result is None:
                raise InvalidInput("a replicated job's ruling names the right result")
            elif bytes(result) not in revealed.values():
                raise InvalidInput(f"no replica revealed 0x{bytes(result).hex()}")
            replica, for_client = Replica(NO_REPLICA.provider, 0, bytes(result)), False
        receipt = self._send("ruling", self.job_disputes.rule, terms, replica, bool(for_client))
        ruled = _event(receipt, self.escrow, "Ruled", job_id=job_id)
        ruled["for_client"] = bool(ruled["for_client"])
        if terms.replicas > 1:
            ruled["result"] = bytes(result)
        ruled["settled"] = _event(receipt, self.escrow, "JobSettled", job_id=job_id)
        return ruled

    def disputes(self) -> list[dict]:
        """Disputed jobs still awaiting a ruling (their ruling period runs), oldest first:
        `job_id`, `client`, `replicas`, `price`, `revealed`, `ruling_end`. The candidates
        come from the event index (opened if need be, then synced); each is checked on
        the chain."""
        index = self.index or self.open_index()
        index.sync()
        now, found = self.chain.now(), []
        for row in reversed(index.jobs(limit=1_000_000, status="disputed")):
            job_id = bytes.fromhex(row["job_id"][2:])
            view = self.jobs.view(job_id)
            if view.status != JobStatus.DISPUTED or view.phase_end <= now:
                continue
            found.append(
                {
                    "job_id": job_id,
                    "client": row["client"],
                    "replicas": int(row["replicas"]),
                    "price": int(row["price"]),
                    "revealed": int(view.revealed),
                    "ruling_end": int(view.phase_end),
                }
            )
        return found

    # -- governance

    def proposal(self, actions, description: str, *, reserve: bool = True) -> Proposal:
        """The proposal this account would make of `actions`: its description reserved to
        the account unless `reserve=False` (`computeshare.governance.reserved`: nobody else
        can take its id first and cancel it), its id computed here. Raises ClientError if
        that proposal already exists."""
        from computeshare.governance import Proposal, reserved

        proposal = Proposal(actions, reserved(description, self._sender(), reserve=reserve))
        if self.governor.proposalSnapshot(proposal) != 0:
            raise ClientError(
                f"proposal {int(proposal)} already exists (same actions and description)"
            )
        return proposal

    def propose(self, actions, description: str, *, reserve: bool = True) -> Proposal:
        """Proposes `actions` from this account, reserved to it unless `reserve=False`;
        returns the proposal (its id, with the actions and the description sent)."""
        proposal = self.proposal(actions, description, reserve=reserve)
        self.governor.propose(*proposal.propose_args(), sender=self._sender())
        return proposal

    def vote(self, proposal_id: int, support: int, reason: str = ""):
        me = self._sender()
        if reason:
            return self.governor.castVoteWithReason(proposal_id, support, reason, sender=me)
        return self.governor.castVote(proposal_id, support, sender=me)


# The device statuses each DeviceRegistry action starts from.
DEVICE_ACTIONS = {"pause": ("active",), "resume": ("paused",), "retire": ("active", "paused")}
VIRTUAL_SHARES = 10**6  # Staking's _VIRTUAL_SHARES (a pool's price: (T + 1) / (S + 10**6))
SPEC_FIELDS = (
    "cpu_cores", "memory_mb", "gpu_count", "gpu_model", "vram_mb", "region",
    "price_per_second", "max_concurrent_jobs", "attestation",
)  # fmt: skip


def _spec_dict(spec) -> dict:
    """A DeviceRegistry.Spec (from a call or an event) as a dict; bytes32 fields as bytes."""
    if isinstance(spec, list | tuple):  # an event's struct decodes as a list
        values = dict(zip(SPEC_FIELDS, spec, strict=True))
    else:
        values = {name: getattr(spec, name) for name in SPEC_FIELDS}
    for name in ("gpu_model", "attestation"):
        values[name] = bytes(values[name])
    return {
        name: value if isinstance(value, bytes) else int(value) for name, value in values.items()
    }


ALIASES = {alias: d.name for alias, d in vars(ComputeShare).items() if isinstance(d, _Deployed)}


def _argument_text(name: str, value: Any) -> str:
    """A decoded argument for people: amounts in tokens, bytes as hex."""
    from computeshare.format import tokens

    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, int) and not isinstance(value, bool) and name.lower() in _AMOUNTS:
        return f"{tokens(value)} tokens"
    return str(value)


_AMOUNTS = {"amount", "value", "wad", "assets"}

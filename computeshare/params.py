"""The governed parameters of every contract, with the hard bounds the contracts enforce.

Scripts and the CLI check values against these bounds before sending anything, so a bad
value fails locally with a clear message instead of as a revert. tests/test_params.py
compares every entry with the deployed contracts' `parameter_bounds` and defaults, so this
table cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from computeshare.constants import DAY, HOUR, TOKEN


@dataclass(frozen=True)
class Parameter:
    contract: str
    name: str
    key: int
    low: int
    high: int
    default: int

    @property
    def unit(self) -> str:
        """How the value reads: "bps", "seconds", "tokens" (in wei), "flag" or "count"."""
        name = self.name
        if name.endswith("_BPS"):
            return "bps"
        if name.endswith(("_PERIOD", "_WINDOW", "_DURATION", "_DELAY", "WARMUP", "_EXTENSION")):
            return "seconds"
        if name.endswith(("_STAKE", "_DELEGATION", "_THRESHOLD", "_STAKE_PER_DEVICE")):
            return "tokens"
        if self.low == 0 and self.high == 1:
            return "flag"
        return "count"

    def format(self, value: int) -> str:
        """`value` in this parameter's unit, for people: "2.50%", "2 d", "1,000 tokens"."""
        from computeshare.format import duration, tokens

        unit = self.unit
        if unit == "bps":
            return f"{value / 100:g}% ({value} bps)"
        if unit == "seconds":
            return duration(value)
        if unit == "tokens":
            return f"{tokens(value)} tokens"
        if unit == "flag":
            return "on" if value else "off"
        return f"{value:,}"

    def check(self, value: int) -> int:
        """Returns `value` if it is within bounds, else raises ValueError naming the bounds."""
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{self.contract}.{self.name} must be an integer, got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(
                f"{self.contract}.{self.name} = {value} is out of bounds [{self.low}, {self.high}]"
            )
        return value


def _table(contract: str, rows: list[tuple[str, int, int, int]]) -> dict[str, Parameter]:
    return {
        name: Parameter(contract, name, key, low, high, default)
        for key, (name, low, high, default) in enumerate(rows)
    }


PARAMETERS: dict[str, dict[str, Parameter]] = {
    "JobEscrow": _table(
        "JobEscrow",
        [
            ("PROTOCOL_FEE_BPS", 0, 1_000, 250),
            ("REVEAL_WINDOW", 10 * 60, DAY, HOUR),
            ("CHALLENGE_WINDOW", HOUR, 3 * DAY, DAY),
            ("RULING_PERIOD", HOUR, 3 * DAY, 2 * DAY),
            ("DISPUTE_BOND_BPS", 100, 5_000, 1_000),
            ("KEEPER_BOUNTY_BPS", 0, 2_000, 1_000),
            ("MAX_JOB_DURATION", HOUR, 30 * DAY, 7 * DAY),
            ("MIN_COLLATERAL_BPS", 0, 50_000, 5_000),
            ("RECORD_MIN_FEE", 0, 10_000_000, 1_000),
        ],
    ),
    "Staking": _table(
        "Staking",
        [
            ("THAWING_PERIOD", 7 * DAY, 60 * DAY, 14 * DAY),
            ("MAX_DELEGATION_RATIO", 1, 50, 10),
            ("MIN_DELEGATION", TOKEN, 100_000 * TOKEN, 100 * TOKEN),
            ("MIN_PROVIDER_STAKE", TOKEN, 1_000_000 * TOKEN, 1_000 * TOKEN),
            ("BENEFICIARY_SHARE_BPS", 0, 5_000, 2_500),
            ("BURN_SLASHED", 0, 1, 0),
            ("CUT_CHANGE_DELAY", DAY, 30 * DAY, 7 * DAY),
            ("WARMUP", DAY, 60 * DAY, 11 * DAY),
        ],
    ),
    "DeviceRegistry": _table(
        "DeviceRegistry",
        [("MIN_STAKE_PER_DEVICE", TOKEN, 1_000_000 * TOKEN, 1_000 * TOKEN)],
    ),
    "Governor": _table(
        "Governor",
        [
            ("VOTING_DELAY", 1, 7 * DAY, DAY),
            ("VOTING_PERIOD", DAY, 30 * DAY, 5 * DAY),
            ("PROPOSAL_THRESHOLD", TOKEN, 10_000_000 * TOKEN, 100_000 * TOKEN),
            ("QUORUM_BPS", 100, 5_000, 400),
            ("LATE_QUORUM_EXTENSION", HOUR, 7 * DAY, DAY),
        ],
    ),
}

# Timelock bounds (constructor arguments and `set_delay` / `set_grace_period`).
TIMELOCK_DELAY = Parameter("Timelock", "delay", -1, DAY, 30 * DAY, 2 * DAY)
TIMELOCK_GRACE = Parameter("Timelock", "grace_period", -1, 7 * DAY, 60 * DAY, 14 * DAY)
# The longest guardian appointment JobEscrow and the Governor accept.
MAX_GUARDIAN_TERM = 365 * DAY


def parameter(contract: str, name: str) -> Parameter:
    """A parameter by contract and constant name, e.g. ("JobEscrow", "PROTOCOL_FEE_BPS")."""
    try:
        return PARAMETERS[contract][name.upper()]
    except KeyError:
        known = ", ".join(f"{c}.{n}" for c, table in PARAMETERS.items() for n in table)
        raise ValueError(f"unknown parameter {contract}.{name}; known: {known}") from None


def parameter_rows(read: Callable[[str, int], int | None]) -> list[dict]:
    """Every governed parameter with its value now, read by `read(contract, key)` (None for
    a contract the deployment lacks: its parameters are left out): contract, name, key,
    value, hard bounds, default, unit, and the value as people read it (`text`)."""
    rows = []
    for contract_name, table in PARAMETERS.items():
        for item in table.values():
            value = read(contract_name, item.key)
            if value is None:
                break
            rows.append(
                {
                    "contract": contract_name,
                    "name": item.name,
                    "key": item.key,
                    "value": value,
                    "text": item.format(value),
                    "low": item.low,
                    "high": item.high,
                    "default": item.default,
                    "unit": item.unit,
                }
            )
    return rows

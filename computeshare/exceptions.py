"""What the library refuses, as typed exceptions with a one-line message.

Every check `computeshare.client.ComputeShare` makes before sending raises one of these,
so a Python dApp gets the same refusals the CLI prints (the CLI turns any
`ComputeShareError` into a one-line error). A refusal is raised before the first
transaction of an operation: nothing was sent.
"""

from __future__ import annotations


class ComputeShareError(Exception):
    """A request refused before anything was sent; `str()` is one line saying why."""


class ClientError(ComputeShareError):
    """The client cannot act at all: no manifest, the wrong chain, no account."""


class ManifestError(ClientError):
    """A deployment manifest that cannot be read, is not JSON, or is JSON of another shape;
    the message names the file."""


class InvalidInput(ComputeShareError, ValueError):
    """An argument no contract call could accept (a bad spec, an out-of-range value)."""


class InsufficientBalance(ComputeShareError):
    """An account holds less than the operation needs (`what` is `have`, needs `need`)."""

    def __init__(self, message: str, *, what: str = "", have: int = 0, need: int = 0):
        super().__init__(message)
        self.what, self.have, self.need = what, have, need


class InsufficientStake(InsufficientBalance):
    """A provider's bonded stake does not cover what it asks for (e.g. one more device)."""


class NoEligibleDevice(InvalidInput):
    """A job's requirements no registered device could ever meet."""


class NotAProvider(ComputeShareError):
    """The address has no provider pool (no own stake) to delegate to."""


class NotAllowed(ComputeShareError):
    """The account may not act on this (not its job, not its device)."""


class WrongState(ComputeShareError):
    """The job, stake or contract is not in the state the operation needs (yet)."""


class WouldRevert(ComputeShareError):
    """A simulation of the call (eth_call) reverted: `reason` is the contract's."""

    def __init__(self, reason: str):
        super().__init__(f"would revert: {reason}")
        self.reason = reason


class NoSuchJob(ComputeShareError, LookupError):
    """No job with this id was posted on this deployment."""

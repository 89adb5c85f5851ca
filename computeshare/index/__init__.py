"""The event index (see `computeshare.index.sync`), re-exported under its old name."""

from computeshare.index.sync import *  # noqa: F403
from computeshare.index.sync import _line  # noqa: F401

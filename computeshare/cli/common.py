"""What every command group shares, re-exported from `computeshare.cli.options`."""

from computeshare.cli.options import *  # noqa: F403
from computeshare.cli.options import duration, hex_id, show  # noqa: F401

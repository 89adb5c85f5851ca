"""The dashboard (see `computeshare.dashboard.views`), re-exported under its old name."""

from computeshare.dashboard.views import *  # noqa: F403
from computeshare.dashboard.views import _follow  # noqa: F401

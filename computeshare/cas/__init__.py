"""Content-addressed trees (see `computeshare.cas.tree`), re-exported under their old name."""

from computeshare.cas.tree import *  # noqa: F403

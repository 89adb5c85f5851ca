"""The fork tests read a live deployment: the test suite's own deployments are not built."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _deployments():
    """Nothing: tests/conftest.py's deploys the test suite's contracts, which no fork test
    uses."""

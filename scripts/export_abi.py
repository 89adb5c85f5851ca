"""Writes interfaces/abi/<Name>.json, the ABI of every deployable contract, from the build.

`make abi` runs it; tests/test_interfaces.py fails when the files drift from the contracts.
"""

from __future__ import annotations

import click
from ape import project

from devtools import PROJECT_ROOT
from devtools.abi_export import export_abis


@click.command()
def cli():
    """Export the ABI of every deployable contract to interfaces/abi/."""
    for path in export_abis(project):
        click.echo(f"wrote {path.relative_to(PROJECT_ROOT)}")

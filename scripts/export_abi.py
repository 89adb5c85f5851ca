"""Writes interfaces/abi/<Name>.json, the ABI of every deployable contract, from the build,
then the TypeScript package sdk/ts/ (`@computeshare/abi`: typed ABIs and deployed addresses).

`make abi` runs it; tests/test_interfaces.py and tests/test_typed_abi.py fail when the files
drift from the contracts.
"""

from __future__ import annotations

import click
from ape import project

from devtools import PROJECT_ROOT, typed_abi
from devtools.abi_export import export_abis


@click.command()
def cli():
    """Export the ABI of every deployable contract to interfaces/abi/ and sdk/ts/src/."""
    for path in export_abis(project) + typed_abi.write():
        click.echo(f"wrote {path.relative_to(PROJECT_ROOT)}")

"""Deploys the whole ComputeShare suite to any network ape knows, or resumes a deployment.

    ape run deploy --network ethereum:local:foundry --account TEST::0
    ape run deploy --network ethereum:sepolia:node --account deployer-alias

Parameters come from deployments/config/<network>.yaml (checked against the contracts'
bounds before anything is sent); the manifest goes to deployments/<network>-<chain id>.json.
Re-running against a chain with a complete manifest sends nothing; a run cut off half-way
resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import chain, project
from ape.cli import ConnectedProviderCommand, account_option

from computeshare.deploy import DeployConfig, DeployError, Deployment, config_path, open_manifest
from computeshare.manifest import deployments_dir, manifest_path


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="config YAML")
@click.option(
    "--manifest-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=deployments_dir(),
    show_default=True,
)
def cli(network, account, config_file, manifest_dir):
    """Deploy (or resume, or confirm) ComputeShare on the connected network."""
    network_name = chain.provider.network.name
    try:
        config = DeployConfig.load(config_file or config_path(network_name, chain.chain_id))
        path = manifest_path(network_name, chain.chain_id, manifest_dir)
        manifest = open_manifest(path, chain, log=click.echo)
        deployment = Deployment(project, account, config, manifest, log=click.echo)
        deployment.run()
    except DeployError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{'deployed' if deployment.sent else 'already deployed'}: {path}")
    click.echo(f"transactions sent: {deployment.sent}")
    for name in manifest.names():
        click.echo(f"  {name:<15} {manifest.address(name)}  block {manifest.block(name)}")

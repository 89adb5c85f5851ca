"""`computeshare run`: a module run here exactly as a provider runs it.

    computeshare run kmer.wasm --input reads/ --arg 21 --arg /input/reads.fa --output out/
    computeshare run --python job.py --input data/ --prepared ~/.computeshare/prepared

Clients test a job before paying for it; providers and arbiters reproduce a disputed result.
The input directory is packed as a job's inputs are (`computeshare.cas`) and mounted at
/input from the pack; /output is a fresh directory; the result is the one replicas commit to.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from computeshare.exceptions import ComputeShareError


def printable(data: bytes) -> str:
    """A program's output for a terminal: control characters other than newline and tab
    shown as escapes, so output cannot move the cursor or retitle the window."""
    text = data.decode("utf-8", "replace")
    return "".join(c if c in "\n\t" or c.isprintable() else repr(c)[1:-1] for c in text)


DEFAULT_FUEL = 10**12


@click.command("run")
@click.argument(
    "module", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--python",
    "python",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="run this Python script on the pinned CPython for WASI instead of MODULE, as "
    "`client post --python` makes the job (computeshare.python_job)",
)
@click.option(
    "--prepared",
    type=click.Path(file_okay=False, path_type=Path),
    help="keep compiled modules in this folder (mode 700) for the next run",
)
@click.option(
    "--input",
    "input_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="directory mounted read-only at /input",
)
@click.option("--arg", "args", multiple=True, help="a program argument (repeat for more)")
@click.option("--env", "env", multiple=True, help="an environment variable NAME=value")
@click.option("--fuel", type=int, default=DEFAULT_FUEL, show_default=True, help="fuel limit")
@click.option("--export", default="_start", show_default=True, help="function to call")
@click.option("--stdin", "stdin_file", type=click.File("rb"), help="file the program's stdin reads")
@click.option(
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="keep /output here (a new or empty directory)",
)
@click.option("--seed", default="0x" + "00" * 32, show_default=True, help="random_get's seed")
@click.option("--memory-limit", type=int, help="most linear memory in bytes (the spec's bound)")
@click.option("--output-limit", type=int, help="most bytes in /output (the spec's bound)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object: status, fuel, output_root")
def run(
    module: Path | None,
    python: Path | None,
    prepared: Path | None,
    input_dir: Path | None,
    args: tuple[str, ...],
    env: tuple[str, ...],
    fuel: int,
    export: str,
    stdin_file,
    output_dir: Path | None,
    seed: str,
    memory_limit: int | None,
    output_limit: int | None,
    as_json: bool,
) -> None:
    """Run MODULE (or a --python script) as a provider would; print its status, fuel and
    output root."""
    from computeshare import local_run, python_job
    from computeshare.sandbox import HostError

    if (module is None) == (python is None):
        raise click.UsageError("give MODULE or --python SCRIPT")

    try:
        seed_bytes = bytes.fromhex(seed.removeprefix("0x"))
    except ValueError:
        raise click.BadParameter("not hex", param_hint="--seed") from None
    if output_dir is not None and output_dir.exists() and any(output_dir.iterdir()):
        raise click.BadParameter(f"{output_dir} is not empty", param_hint="--output")
    options = {"memory_limit": memory_limit, "output_limit": output_limit}
    with tempfile.TemporaryDirectory(prefix="computeshare-run-") as scratch:
        try:
            if python is not None:
                tree = Path(scratch) / "python-input"
                raw = python_job.job_tree(python, input_dir, tree).module
                input_dir, args, env = tree, python_job.job_args(args), python_job.job_env(env)
            else:
                raw = module.read_bytes()
            result, inputs, _ = local_run.run_directory(
                raw,
                input_dir=input_dir,
                scratch=Path(scratch),
                output_dir=output_dir or Path(scratch) / "output",
                fuel=fuel,
                export=export,
                stdin=stdin_file.read() if stdin_file is not None else b"",
                args=list(args),
                env=list(env),
                seed=seed_bytes,
                prepared=prepared,
                **{key: value for key, value in options.items() if value is not None},
            )
        except (ComputeShareError, ValueError, OSError, HostError) as error:  # PythonJobError too
            raise click.ClickException(str(error)) from None
    root = "0x" + result.output_root.hex() if result.output_root else None
    summary = {
        "status": result.status,
        "status_name": result.status_name,
        "fuel": result.fuel,
        "output_root": root,
        "input_root": "0x" + inputs.root if inputs is not None else None,
        "stdout": result.output.decode("utf-8", "replace"),
        "result_hash": "0x" + result.digest().hex(),
    }
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    click.echo(f"status       {result.status_name} ({result.status})")
    click.echo(f"fuel         {result.fuel:,}")
    click.echo(f"output root  {root or '(no files in /output)'}")
    click.echo(f"result hash  {summary['result_hash']}")
    if result.output:
        click.echo(f"stdout ({len(result.output):,} bytes):")
        click.echo(printable(result.output))

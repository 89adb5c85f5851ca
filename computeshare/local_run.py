"""One wasm run with its trees, as every replica, the arbiter and `computeshare run` make it.

The inputs are a pack (`computeshare.cas`) mounted read-only at /input straight from the pack
file; /output is a fresh directory; after the run its files are packed, and the pack's root
is the run's `output_root`, part of what replicas commit to (`RunResult.digest`). The worker
(`computeshare.worker`) and the local command (`computeshare.cli.run`) both call `run_module`,
so a client's test run and a provider's run are the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from computeshare import cas, sandbox
from computeshare.sandbox import RunResult


def split_env(env: Sequence[str]) -> list[tuple[str, str]]:
    """["NAME=value", ...] as (name, value) pairs; refuses an entry without a name."""
    pairs = []
    for item in env:
        name, sep, value = item.partition("=")
        if not sep or not name or "\x00" in item:
            raise ValueError(f"environment entry {item[:40]!r} is not NAME=value")
        pairs.append((name, value))
    return pairs


def run_module(
    module: bytes,
    *,
    fuel: int,
    export: str = "_start",
    stdin: bytes = b"",
    args: Sequence[str] = (),
    env: Sequence[str] = (),
    inputs: Path | None = None,
    output_dir: Path,
    store: cas.Cache,
    seed: bytes = b"",
    memory_limit: int | None = None,
    output_limit: int | None = None,
    prepared: Path | None = None,
) -> tuple[RunResult, cas.PackInfo | None]:
    """Runs `module` with the pack file `inputs` at /input and the empty directory
    `output_dir` at /output; packs what the run left there into `store` (a `cas.Cache`,
    which serves it); `prepared` caches the prepared module. Returns the result (its
    `output_root` set when /output holds files) and the output pack."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.iterdir()):
        raise ValueError(f"{output_dir} is not empty")
    files = cas.open_pack(inputs).files() if inputs is not None else None
    options = {}
    if memory_limit is not None:
        options["memory_limit"] = memory_limit
    if output_limit is not None:
        options["output_quota"] = output_limit
    result = sandbox.run(
        module,
        export,
        stdin,
        fuel,
        args=list(args),
        env=split_env(env),
        inputs=files,
        output_dir=output_dir,
        seed=seed,
        cache_dir=prepared,
        **options,
    )
    if not any(output_dir.iterdir()):
        return result, None
    info = store.add_dir(output_dir)
    return replace(result, output_root=bytes.fromhex(info.root)), info


def run_directory(
    module: bytes,
    *,
    input_dir: Path | None,
    scratch: Path,
    output_dir: Path,
    **options,
) -> tuple[RunResult, cas.PackInfo | None, cas.PackInfo | None]:
    """`run_module` on a local input directory, packed first as a client's inputs are.
    Returns the result, the input pack and the output pack."""
    inputs = None
    if input_dir is not None:
        inputs = cas.pack_dir(input_dir, scratch / "input.pack")
    result, output = run_module(
        module,
        inputs=inputs.path if inputs is not None else None,
        output_dir=output_dir,
        store=cas.Cache(scratch / "store"),
        **options,
    )
    return result, inputs, output

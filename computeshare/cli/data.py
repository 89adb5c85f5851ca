"""`computeshare data`: content-addressed trees (computeshare.cas) for job inputs and outputs.

    computeshare data add ./inputs --store ~/.computeshare/store --serve 0.0.0.0:8710
    computeshare data add ./inputs --static ./site      (then publish ./site: any static host)
    computeshare data serve --store ~/.computeshare/store --serve 0.0.0.0:8710
    computeshare data fetch ROOT SIZE http://host:8710/cas/ --cache DIR --out ./inputs

Loads neither ape nor web3: packing and serving need no chain.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import click

DEFAULT_STORE = "~/.computeshare/store"


def _store_option(func):
    return click.option(
        "--store",
        type=click.Path(file_okay=False, path_type=Path),
        default=lambda: os.environ.get("COMPUTESHARE_STORE", DEFAULT_STORE),
        show_default="$COMPUTESHARE_STORE or " + DEFAULT_STORE,
        help="where packs are kept (a cache directory)",
    )(func)


def _one_line(func):
    """CasError and OSError as one-line errors."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from computeshare.cas import CasError

        try:
            return func(*args, **kwargs)
        except CasError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            raise click.ClickException(f"{where}{error.strerror or error}") from None

    return wrapper


def _serve_forever(cache, address: str) -> None:
    from computeshare.cas import serve

    server = serve(cache, address)
    click.echo(f"serving {len(cache.roots())} tree(s) at {server.url} (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@click.group("data")
def data():
    """Content-addressed trees for job inputs and outputs."""


@data.command("add")
@click.argument("directory", type=click.Path(path_type=Path))
@_store_option
@click.option("--serve", "address", metavar="HOST:PORT", help="then serve the store's trees")
@click.option(
    "--static",
    "static_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="also write the tree as plain files under this folder (OUT/ROOT/leaves, OUT/ROOT/0, "
    "...), for any static host or IPFS",
)
@click.option("--json", "as_json", is_flag=True, help="print the tree's spec as JSON")
@_one_line
def add(directory, store, address, static_dir, as_json):
    """Pack DIRECTORY into the store and print its root and size."""
    from computeshare.cas import Cache, write_static

    cache = Cache(store.expanduser())
    info = cache.add_dir(directory)
    written = write_static(cache, info.root, static_dir) if static_dir is not None else None
    if as_json:
        uris = [f"http://{address}/cas/"] if address else []
        spec = {**info.spec(uris), "entries": info.entries, "pack": str(info.path)}
        if written is not None:
            spec["static"] = str(written)
        click.echo(json.dumps(spec))
    else:
        click.echo(f"root {info.root}")
        click.echo(f"size {info.size} ({info.entries} files)")
        if written is not None:
            click.echo(f"static {written} (leaves and {len(list(written.iterdir())) - 1} chunks)")
            click.echo(
                f"publish {static_dir} as it is: on a static host, the data URI is its address "
                "(https://HOST/PATH/); on IPFS (`ipfs add -r --cid-version 1 "
                f"{static_dir}`), ipfs://CID/ or https://GATEWAY/ipfs/CID/"
            )
    if address:
        _serve_forever(cache, address)


@data.command("serve")
@_store_option
@click.option("--serve", "address", metavar="HOST:PORT", required=True)
@_one_line
def serve_command(store, address):
    """Serve the store's trees chunk by chunk, with proofs."""
    from computeshare.cas import Cache

    _serve_forever(Cache(store.expanduser()), address)


@data.command("fetch")
@click.argument("root")
@click.argument("size", type=click.IntRange(0))
@click.argument("uris", nargs=-1, required=True)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("COMPUTESHARE_STORE", DEFAULT_STORE),
    help="cache directory (default: the store)",
)
@click.option("--quota", type=click.IntRange(1), help="the cache's byte quota")
@click.option("--max-size", type=click.IntRange(1), default=1 << 40, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="unpack into this new directory")
@click.option(
    "--ipfs-gateway",
    metavar="URL",
    help="fetch ipfs://CID/ URIs through this gateway (default: $COMPUTESHARE_IPFS_GATEWAY)",
)
@_one_line
def fetch(root, size, uris, cache_dir, quota, max_size, out, ipfs_gateway):
    """Fetch and verify tree ROOT of SIZE bytes from URIS (tried in order): chunk servers
    (http://host:8710/cas/), static folders (https://host/path/), IPFS (ipfs://CID/)."""
    from computeshare.cas import Cache, fetch_tree, open_pack, unpack

    cache = Cache(cache_dir.expanduser(), quota)
    path = fetch_tree(root, size, uris, cache, max_size=max_size, ipfs_gateway=ipfs_gateway)
    if out is not None:
        unpack(open_pack(path), out)
    click.echo(str(out or path))

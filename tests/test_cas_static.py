"""The static form of trees (computeshare.cas.write_static, `computeshare data add --static`):
plain files served by a real static HTTP server (`http.server`, as any static host would),
also mounted under /ipfs/<cid>/ as an IPFS path gateway, fetched and verified by
`fetch_tree` against honest and hostile copies; ipfs:// URIs; resuming; mixing with a
chunk server."""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from computeshare import cas
from computeshare.cas import CHUNK, Cache, CasError, ChunkServer, TreeFetchError, fetch_tree
from tests.test_cas import FAST, TREE, make_tree, noise

CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


class StaticHandler(SimpleHTTPRequestHandler):
    """`http.server`'s file handler over the folder, also under /ipfs/<CID>/; records the
    paths it served, and misbehaves on the paths named in `server.trickle`."""

    def translate_path(self, path):
        prefix = f"/ipfs/{CID}"
        if path.startswith(prefix + "/"):
            path = path[len(prefix) :]
        return super().translate_path(path)

    def send_head(self):
        self.server.seen.append(self.path.rpartition("/")[2])
        return super().send_head()

    def copyfile(self, source, outputfile):
        if self.path.rpartition("/")[2] in self.server.trickle:
            for _ in range(100):
                outputfile.write(source.read(1))
                outputfile.flush()
                time.sleep(0.1)
        return super().copyfile(source, outputfile)

    def log_message(self, *args):
        pass


class StaticServer:
    def __init__(self, folder: Path):
        handler = functools.partial(StaticHandler, directory=str(folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.seen, self.httpd.trickle = [], set()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.base + "/"
        self.gateway_url = f"{self.base}/ipfs/{CID}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def seen(self) -> list[str]:
        return self.httpd.seen

    def chunks_served(self) -> int:
        return sum(1 for name in self.seen if name.isdigit())

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def published(tmp_path):
    """(info, the static folder's tree directory, a running static server)"""
    tree = make_tree(tmp_path / "tree", TREE)
    store = Cache(tmp_path / "store")
    info = store.add_dir(tree)
    written = cas.write_static(store, info.root, tmp_path / "site")
    server = StaticServer(tmp_path / "site")
    yield info, written, server
    server.close()


def fetch_fails(info, uris, tmp_path, message, seconds=6.0, **options):
    cache = Cache(tmp_path / "cache")
    started = time.monotonic()
    with pytest.raises(TreeFetchError, match=message):
        fetch_tree(info.root, info.size, uris, cache, max_size=1 << 30, **{**FAST, **options})
    assert time.monotonic() - started < seconds
    assert not cache.has(info.root)


def test_layout(published):
    info, written, _ = published
    assert written.name == info.root
    leaves, _ = cas.leaves_of_file(info.path)
    assert (written / "leaves").read_bytes() == b"".join(leaves)
    assert sorted(p.name for p in written.iterdir()) == ["0", "1", "2", "3", "leaves"]
    pack = info.path.read_bytes()
    assert b"".join((written / str(i)).read_bytes() for i in range(4)) == pack


@pytest.mark.parametrize("form", ["plain", "gateway", "ipfs"])
def test_fetched_from_a_static_host(tmp_path, published, form, monkeypatch):
    info, _, server = published
    uri = {"plain": server.url, "gateway": server.gateway_url, "ipfs": f"ipfs://{CID}/"}[form]
    monkeypatch.setenv(cas.IPFS_GATEWAY_ENV, server.base)
    cache = Cache(tmp_path / "cache", quota=10 * CHUNK)
    path = fetch_tree(info.root, info.size, [uri], cache, max_size=1 << 30)
    assert path.read_bytes() == info.path.read_bytes()
    assert sorted(server.seen) == ["0", "1", "2", "3", "leaves"]  # the leaves once
    assert cache.leaves(info.root) == cas.leaves_of_file(info.path)[0]
    left = {p.suffix for p in (cache.dir / "partial").glob(f"{info.root}.*")}
    assert left <= {".lock"}  # no .part, .leaves or .hashes


def test_ipfs_without_a_gateway(tmp_path, published, monkeypatch):
    info, _, server = published
    monkeypatch.delenv(cas.IPFS_GATEWAY_ENV, raising=False)
    cache = Cache(tmp_path / "cache")
    with pytest.raises(CasError, match=r"^ipfs://\w+/: no IPFS gateway is configured \(set "):
        fetch_tree(info.root, info.size, [f"ipfs://{CID}/"], cache, max_size=1 << 30)
    assert server.seen == []
    # Skipped, not fatal, beside another source.
    path = fetch_tree(info.root, info.size, [f"ipfs://{CID}/", server.url], cache, max_size=1 << 30)
    assert path.read_bytes() == info.path.read_bytes()
    with pytest.raises(CasError, match="is not ipfs://<cid>/"):
        fetch_tree(info.root, 9, ["ipfs://bad cid/"], Cache(tmp_path / "c1"), max_size=1 << 30)
    with pytest.raises(CasError, match="gateway 'ftp://x' is not an http"):
        fetch_tree(info.root, 9, [f"ipfs://{CID}/"], Cache(tmp_path / "c2"), max_size=1 << 30,
                   ipfs_gateway="ftp://x")  # fmt: skip


def test_size_checked_before_any_request(tmp_path, published):
    info, _, server = published
    with pytest.raises(CasError, match="more than the 1000 this policy allows"):
        fetch_tree(info.root, info.size, [server.url], Cache(tmp_path / "c"), max_size=1_000)
    assert server.seen == []


def test_tampered_chunk(tmp_path, published):
    info, written, server = published
    raw = bytearray((written / "1").read_bytes())
    raw[5] ^= 0xFF
    (written / "1").write_bytes(bytes(raw))
    fetch_fails(info, [server.url], tmp_path, "chunk 1 does not match the root")


def test_tampered_leaves(tmp_path, published):
    """Leaves that match the tampered chunk but not the root are refused: the source is
    dropped as a liar at once, whatever its chunks."""
    info, written, server = published
    raw = bytearray((written / "1").read_bytes())
    raw[5] ^= 0xFF
    (written / "1").write_bytes(bytes(raw))
    leaves = bytearray((written / "leaves").read_bytes())
    leaves[32:64] = cas.leaf_hash(bytes(raw))
    (written / "leaves").write_bytes(bytes(leaves))
    fetch_fails(info, [server.url], tmp_path, "its leaves file does not match the root",
                max_failures=3)  # fmt: skip
    assert server.seen.count("leaves") == 1


@pytest.mark.parametrize("change", [b"\x00" * 32, b"\x00" * 31, -32, -1])
def test_leaves_of_the_wrong_length(tmp_path, published, change):
    info, written, server = published
    raw = (written / "leaves").read_bytes()
    raw = raw + change if isinstance(change, bytes) else raw[:change]
    (written / "leaves").write_bytes(raw)
    fetch_fails(info, [server.url], tmp_path, f"sent {len(raw)} Content-Length for a 128-byte "
                "leaves file")  # fmt: skip


def test_wrong_declared_size(tmp_path, published):
    """A declared size with one more chunk than the leaves file holds: refused by length."""
    info, _, server = published
    cache = Cache(tmp_path / "cache")
    with pytest.raises(TreeFetchError, match="Content-Length for a 160-byte leaves file"):
        fetch_tree(
            info.root, 4 * CHUNK + 1, [server.url], cache, max_size=1 << 30, workers=1, **FAST
        )


def test_truncated_chunk(tmp_path, published):
    info, written, server = published
    (written / "2").write_bytes((written / "2").read_bytes()[:1000])
    fetch_fails(info, [server.url], tmp_path, f"sent 1000 Content-Length for a {CHUNK}-byte chunk")


def test_missing_chunk(tmp_path, published):
    info, written, server = published
    (written / "3").unlink()
    fetch_fails(info, [server.url], tmp_path, "no source served chunk 3 .* answered 404", workers=1)


def test_redirect_not_followed(tmp_path, published):
    """`http.server` redirects a folder's path without its "/": a leaves file that is a
    folder (with an index) gets a 301 that is not followed."""
    info, written, server = published
    (written / "leaves").unlink()
    (written / "leaves").mkdir()
    (written / "leaves" / "index.html").write_bytes(b"\x00" * 128)
    fetch_fails(info, [server.url], tmp_path, r"redirected \(301 to '/[0-9a-f]+")
    assert "" not in server.seen  # the redirect's target was never asked for


@pytest.mark.parametrize("name", ["1", "leaves"])
def test_trickle_cut_off(tmp_path, published, name):
    info, _, server = published
    server.httpd.trickle.add(name)
    what = "chunk" if name.isdigit() else "leaves file"
    fetch_fails(info, [server.url], tmp_path, f"took longer than 1 s for one {what}", seconds=4)


def test_resumed(tmp_path):
    """The static host stops answering after seven chunks (its files vanish); the next call
    fetches only the chunks the first did not verify, and not the leaves again."""
    top = make_tree(tmp_path / "big", {"data": noise(24 * CHUNK, 7)})
    store = Cache(tmp_path / "store")
    info = store.add_dir(top)
    written = cas.write_static(store, info.root, tmp_path / "site")
    moved = tmp_path / "moved"
    moved.mkdir()
    for i in range(7, 25):
        shutil.move(written / str(i), moved / str(i))
    server = StaticServer(tmp_path / "site")
    cache = Cache(tmp_path / "cache")
    try:
        with pytest.raises(TreeFetchError, match="no source served chunk 7"):
            fetch_tree(
                info.root, info.size, [server.url], cache, max_size=1 << 30, workers=1, **FAST
            )
        assert cache.partial_chunks(info.root, info.size) == 7
        assert (cache.dir / "partial" / f"{info.root}.hashes").stat().st_size == 25 * 32
        for i in range(7, 25):
            shutil.move(moved / str(i), written / str(i))
        server.seen.clear()
        path = fetch_tree(info.root, info.size, [server.url], cache, max_size=1 << 30)
        assert sorted(map(int, server.seen)) == list(range(7, 25))  # no leaves, no 0..6
    finally:
        server.close()
    assert path.read_bytes() == info.path.read_bytes()
    assert not (cache.dir / "partial" / f"{info.root}.hashes").exists()


def test_kept_leaves_that_do_not_match_are_fetched_again(tmp_path, published):
    info, _, server = published
    cache = Cache(tmp_path / "cache")
    (cache.dir / "partial" / f"{info.root}.hashes").write_bytes(b"\x07" * 128)
    path = fetch_tree(info.root, info.size, [server.url], cache, max_size=1 << 30)
    assert path.read_bytes() == info.path.read_bytes()
    assert server.seen.count("leaves") == 1


def test_spread_over_static_and_proof_sources(tmp_path, published):
    """Two static mounts and a chunk server share one tree; a tampered static copy is
    dropped and the others finish it."""
    info, _, server = published
    store = Cache(tmp_path / "store")
    with ChunkServer(store) as proofs:
        cache = Cache(tmp_path / "cache")
        uris = [server.url, proofs.url, server.gateway_url]
        fetch_tree(info.root, info.size, uris, cache, max_size=1 << 30, spread=True)
        assert proofs.requests == 1 and server.chunks_served() == 3
    assert cache.get(info.root).read_bytes() == info.path.read_bytes()


def test_a_lying_static_copy_beside_an_honest_one(tmp_path, published):
    info, written, server = published
    bad = tmp_path / "bad"
    shutil.copytree(written.parent, bad)
    raw = bytearray((bad / info.root / "0").read_bytes())
    raw[-1] ^= 1
    (bad / info.root / "0").write_bytes(bytes(raw))
    liar = StaticServer(bad)
    try:
        cache = Cache(tmp_path / "cache")
        path = fetch_tree(info.root, info.size, [liar.url, server.url], cache, max_size=1 << 30,
                          workers=1)  # fmt: skip
        assert path.read_bytes() == info.path.read_bytes()
        assert liar.chunks_served() == 1  # dropped at its first lie
    finally:
        liar.close()


def test_write_static_refuses_a_damaged_pack_and_a_foreign_folder(tmp_path, published):
    info, written, _ = published
    store = Cache(tmp_path / "store")
    assert cas.write_static(store, info.root, written.parent) == written  # already there
    (written / "2").write_bytes(b"x")
    with pytest.raises(CasError, match="exists and does not hold this tree"):
        cas.write_static(store, info.root, written.parent)
    pack = store.pack_path(info.root)
    raw = bytearray(pack.read_bytes())
    raw[CHUNK + 1] ^= 1
    pack.write_bytes(bytes(raw))
    with pytest.raises(CasError, match=r"chunk 1 of the store's .* is damaged"):
        cas.write_static(store, info.root, tmp_path / "other")
    assert [p.name for p in (tmp_path / "other").iterdir()] == []


def test_cli_data_add_static_then_fetch(tmp_path, monkeypatch):
    from computeshare.cli import main

    tree = make_tree(tmp_path / "tree", TREE)
    runner = CliRunner()
    site, store = tmp_path / "site", str(tmp_path / "s")
    result = runner.invoke(
        main, ["data", "add", str(tree), "--store", store, "--static", str(site)]
    )
    assert result.exit_code == 0, result.output
    root = result.output.split()[1]
    assert f"static {site / root} (leaves and 4 chunks)" in result.output
    assert "ipfs://CID/" in result.output
    result = runner.invoke(
        main, ["data", "add", str(tree), "--store", store, "--static", str(site), "--json"]
    )
    spec = json.loads(result.output)
    assert spec["root"] == root and spec["static"] == str(site / root)
    server = StaticServer(site)
    try:
        monkeypatch.delenv(cas.IPFS_GATEWAY_ENV, raising=False)
        base = ["data", "fetch", root, str(spec["size"]), f"ipfs://{CID}/"]
        result = runner.invoke(main, [*base, "--cache", str(tmp_path / "c")])
        assert result.exit_code == 1
        assert result.output.startswith(f"Error: ipfs://{CID}/: no IPFS gateway is configured")
        assert len(result.output.splitlines()) == 1
        out = tmp_path / "out"
        result = runner.invoke(
            main,
            [
                *base,
                "--cache",
                str(tmp_path / "c"),
                "--ipfs-gateway",
                server.base,
                "--out",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        assert (out / "dir" / "b.bin").read_bytes() == TREE["dir/b.bin"]
    finally:
        server.close()
    (site / root / "0").write_bytes(b"no")
    result = runner.invoke(
        main, ["data", "add", str(tree), "--store", store, "--static", str(site)]
    )
    assert result.exit_code == 1
    assert (
        result.output
        == f"Error: {site / root} exists and does not hold this tree (remove it first)\n"
    )


def test_spec_accepts_ipfs_uris(tmp_path, published):
    from computeshare.workloads import TreeRef

    info, _, _ = published
    ref = TreeRef(**info.spec([f"ipfs://{CID}/", "https://gw.example/ipfs/bafy/"]))
    assert ref.uris[0] == f"ipfs://{CID}/"
    with pytest.raises(ValueError):
        TreeRef(**info.spec(["ftp://x/"]))

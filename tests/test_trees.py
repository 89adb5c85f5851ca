"""Real programs on real data, end to end on a local node: a C program built from source
(zlib's minigzip) with its module and input directory named by trees, fetched by three
replicas from a data store, run with arguments, its /output committed by root, served by the
agents and fetched by the client chunk by chunk from all three."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from computeshare import cas
from computeshare.agent import Policy
from computeshare.client import ComputeShare
from computeshare.constants import DAY, TOKEN
from computeshare.results import ResultError, ResultServer
from computeshare.sandbox import STATUS_OK
from computeshare.specs import job_requirements
from computeshare.workloads import decode_spec, module_pack, wasm_spec
from tests.debian import build_examples
from tests.test_agent import agent_for, deploy_for_agents, run_until_final, step

FUEL = 5 * 10**11


@pytest.fixture
def manifest(project, deployer, arbiter, guardian, providers, client, tmp_path):
    return deploy_for_agents(project, deployer, arbiter, guardian, providers, client, tmp_path)


@pytest.fixture(scope="module")
def minigzip() -> bytes:
    return (Path(build_examples("c", "clang")) / "minigzip.wasm").read_bytes()


@pytest.fixture(scope="module")
def gztree() -> bytes:
    """gzip every file of /input into /output, with zlib built from source."""
    return (Path(build_examples("c", "clang")) / "gztree.wasm").read_bytes()


def dna(tmp_path: Path) -> Path:
    folder = tmp_path / "genome"
    folder.mkdir()
    rng = random.Random(31)
    (folder / "reads.fa").write_text("".join(rng.choice("ACGT") for _ in range(512 << 10)))
    return folder


def gzip_spec(module: bytes, store: cas.Cache, uri: str, inputs: cas.PackInfo, **extra):
    """A minigzip job: its module and input tree served by the client's data store."""
    return wasm_spec(
        module,
        fuel=FUEL,
        module_tree=module_pack(module, store).spec([uri]),
        inputs=inputs.spec([uri]),
        **extra,
    )


def test_a_k3_job_on_an_input_tree_gives_an_output_tree_the_client_verifies(
    chain, manifest, providers, client, tmp_path, minigzip
):
    conformance = (Path(build_examples("c", "clang")) / "conformance-c.wasm").read_bytes()
    store = cas.Cache(tmp_path / "client-store")
    genome = dna(tmp_path)
    (genome / "hello.txt").write_text("hello, world\nsecond line\n")
    with cas.ChunkServer(store) as data:
        inputs = store.add_dir(genome)
        spec = wasm_spec(
            conformance,
            fuel=FUEL,
            module_tree=module_pack(conformance, store).spec([data.url]),
            inputs=inputs.spec([data.url]),
            args=["x"],
            env=["GREETING=hi"],
        )
        assert len(spec) < 1_500  # module and data travel by root, not in the spec
        cs = ComputeShare.from_manifest(manifest, account=client)
        job_id = cs.post_job(
            spec,
            job_requirements(compute_seconds=FUEL // 10**9),
            price=100 * TOKEN,
            replicas=3,
            duration=DAY,
        )
        agents = [agent_for(manifest, p, tmp_path) for p in providers[:3]]
        servers = [
            ResultServer(a.journal, progress=a.progress, outputs=a.data / "outputs").start()
            for a in agents
        ]
        try:
            run_until_final(chain, cs, job_id, agents)
            served_before = data.requests
            result = cs.result(job_id, [s.url for s in servers])
            assert result.status == STATUS_OK and len(result.output_root) == 32
            assert b"environ 1 GREETING=hi" in result.output
            # Three replicas on one machine share the input cache: fetched once each chunk.
            chunks = cas.chunk_count(inputs.size)
            assert (
                served_before <= chunks + cas.chunk_count(module_pack(conformance, store).size) * 3
            )
            out = cs.output_files(
                job_id,
                result,
                tmp_path / "files",
                [s.url for s in servers],
                cache=tmp_path / "downloads",
            )
            assert (out / "report.txt").is_file()
            served = [s.chunks.requests for s in servers]
            assert sum(served) == cas.chunk_count(
                cas.open_pack(
                    tmp_path / "downloads" / "packs" / f"{result.output_root.hex()}.pack"
                ).size
            )
        finally:
            for server in servers:
                server.stop()
    record = agents[0].journal.done["0x" + job_id.hex()]
    assert record["outcome"] == "completed"


def test_a_tree_larger_than_the_policy_is_declined_before_accepting(
    chain, manifest, providers, client, tmp_path, gztree
):
    store = cas.Cache(tmp_path / "client-store")
    with cas.ChunkServer(store) as data:
        genome = dna(tmp_path)
        inputs = store.add_dir(genome)
        spec = gzip_spec(gztree, store, data.url, inputs, args=["/input", "/output"])
        cs = ComputeShare.from_manifest(manifest, account=client)
        job_id = cs.post_job(
            spec, job_requirements(compute_seconds=FUEL // 10**9), price=100 * TOKEN,
            replicas=1, duration=DAY,
        )  # fmt: skip
        small = Policy(max_input_bytes=inputs.size - 1)
        agent = agent_for(manifest, providers[0], tmp_path, policy=small)
        step(agent)
        assert "0x" + job_id.hex() not in agent.journal.jobs
        assert data.requests == 0  # refused on the spec's size: nothing was fetched
        # An honest policy fetches, runs and submits it; the client verifies the files.
        agent = agent_for(manifest, providers[1], tmp_path)
        run_until_final(chain, cs, job_id, [agent])
        server = ResultServer(agent.journal, outputs=agent.data / "outputs").start()
        try:
            result = cs.result(job_id, [server.url])
            assert result.status == STATUS_OK and b"1 files, " in result.output
            files = cs.output_files(
                job_id, result, tmp_path / "files", [server.url], cache=tmp_path / "dl"
            )
        finally:
            server.stop()
        packed = gzip.decompress((files / "reads.fa.gz").read_bytes())
        assert packed == (genome / "reads.fa").read_bytes()


def test_a_trickling_input_server_holds_a_worker_not_the_agent(
    chain, manifest, providers, client, tmp_path, gztree
):
    """A client whose data source trickles makes the provider's check wait in a worker: the
    agent's loop goes on (its step returns at once), and the job is declined when the check
    runs out of time, with nothing locked."""
    import socket
    import threading
    import time

    store = cas.Cache(tmp_path / "client-store")
    inputs = store.add_dir(dna(tmp_path))
    listener = socket.create_server(("127.0.0.1", 0))
    uri = f"http://127.0.0.1:{listener.getsockname()[1]}/cas/"
    stop = threading.Event()

    def trickle():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.sendall(b"HTTP/1.1 200 OK\r\n")  # then nothing, for ever

    threading.Thread(target=trickle, daemon=True).start()
    try:
        spec = wasm_spec(gztree, fuel=FUEL, inputs=inputs.spec([uri]), args=["/input", "/output"],
                         inline=False)  # fmt: skip
        cs = ComputeShare.from_manifest(manifest, account=client)
        job_id = cs.post_job(
            spec, job_requirements(compute_seconds=FUEL // 10**9), price=100 * TOKEN,
            replicas=1, duration=DAY,
        )  # fmt: skip
        agent = agent_for(manifest, providers[0], tmp_path, module_cache=tmp_path / "mods")
        (tmp_path / "mods").mkdir()
        (tmp_path / "mods" / f"{decode_spec(spec).input.module.sha256}.wasm").write_bytes(gztree)
        started = time.monotonic()
        agent.step()
        assert time.monotonic() - started < 5  # the loop did not wait for the source
        key = "0x" + job_id.hex()
        assert key in agent.journal.waiting and agent.busy
        locked = cs.staking.pool(providers[0]).locked
        step(agent)  # until the check's time is up: declined
        assert key not in agent.journal.jobs and key not in agent.journal.waiting
        assert cs.staking.pool(providers[0]).locked == locked
    finally:
        stop.set()
        listener.close()


def test_an_input_server_that_lies_gets_the_job_declined(
    chain, manifest, providers, client, tmp_path, gztree
):
    """The input tree's chunks do not match its root: the check before acceptance fails,
    the provider locks nothing."""
    store = cas.Cache(tmp_path / "client-store")
    with cas.ChunkServer(store) as data:
        inputs = store.add_dir(dna(tmp_path))
        pack = store.pack_path(inputs.root)
        raw = bytearray(pack.read_bytes())
        raw[-1] ^= 1  # one byte of the data changed after the root was named
        pack.write_bytes(bytes(raw))
        (pack.with_suffix(".leaves")).unlink()  # the store recomputes: it serves the lie
        spec = gzip_spec(gztree, store, data.url, inputs, args=["/input", "/output"])
        assert decode_spec(spec).input.inputs.root == inputs.root
        cs = ComputeShare.from_manifest(manifest, account=client)
        job_id = cs.post_job(
            spec,
            job_requirements(compute_seconds=FUEL // 10**9),
            price=100 * TOKEN,
            replicas=1,
            duration=DAY,
        )
        agent = agent_for(manifest, providers[0], tmp_path)
        locked = cs.staking.pool(providers[0]).locked
        step(agent)  # the check fetches the tree in a worker, and finds the lie
        key = "0x" + job_id.hex()
        assert key not in agent.journal.jobs and key not in agent.journal.waiting
        assert cs.staking.pool(providers[0]).locked == locked
    with pytest.raises(ResultError):
        cs.result(job_id, [])


def test_an_encrypted_jobs_output_tree_is_the_clients_alone(
    chain, manifest, providers, client, tmp_path, gztree
):
    """The root is what lets anyone fetch the files: for a job whose spec names a key, the
    replicas serve the root encrypted to it, as they do its stdout."""
    import json
    import urllib.request

    from coincurve import PrivateKey

    key = PrivateKey()
    store = cas.Cache(tmp_path / "client-store")
    with cas.ChunkServer(store) as data:
        genome = dna(tmp_path)
        inputs = store.add_dir(genome)
        spec = gzip_spec(
            gztree, store, data.url, inputs, args=["/input", "/output"],
            encrypt_to=key.public_key.format(),
        )  # fmt: skip
        cs = ComputeShare.from_manifest(manifest, account=client)
        job_id = cs.post_job(
            spec, job_requirements(compute_seconds=FUEL // 10**9), price=100 * TOKEN,
            replicas=1, duration=DAY,
        )  # fmt: skip
        agent = agent_for(manifest, providers[0], tmp_path)
        run_until_final(chain, cs, job_id, [agent])
    server = ResultServer(agent.journal, outputs=agent.data / "outputs").start()
    try:
        root = agent.journal.done["0x" + job_id.hex()]["result"]["output_root"]
        url = f"{server.url}/results/0x{job_id.hex()}"
        served = urllib.request.urlopen(url, timeout=10).read().decode()
        assert root not in served and json.loads(served)["encrypted"]
        with pytest.raises(ResultError, match="encrypted"):
            cs.result(job_id, [server.url])
        result = cs.result(job_id, [server.url], key.secret)
        assert result.output_root.hex() == root
        with pytest.raises(ResultError, match="no replica"):
            cs.output_files(job_id, result, tmp_path / "stolen", [server.url])
        files = cs.output_files(
            job_id, result, tmp_path / "files", [server.url], cache=tmp_path / "dl",
            private_key=key.secret,
        )  # fmt: skip
    finally:
        server.stop()
    packed = gzip.decompress((files / "reads.fa.gz").read_bytes())
    assert packed == (genome / "reads.fa").read_bytes()


def test_a_flood_of_tree_jobs_never_starts_more_check_workers_than_the_pool(
    chain, manifest, providers, client, tmp_path, gztree
):
    """Each job with trees is checked in a worker; a client posting many at once gets no more
    check workers started than the policy's pool holds."""
    store = cas.Cache(tmp_path / "client-store")
    with cas.ChunkServer(store) as data:
        inputs = store.add_dir(dna(tmp_path))
        cs = ComputeShare.from_manifest(manifest, account=client)
        for n in range(3):
            spec = gzip_spec(gztree, store, data.url, inputs, args=["/input", "/output", str(n)])
            cs.post_job(
                spec, job_requirements(compute_seconds=FUEL // 10**9), price=100 * TOKEN,
                replicas=1, duration=DAY,
            )  # fmt: skip
        agent = agent_for(manifest, providers[0], tmp_path, policy=Policy(max_workers=1))
        agent.step()
        assert len(agent._checks) == 1 and len(agent.journal.waiting) == 3
        agent.close()


def test_a_job_whose_trees_are_on_a_static_host_behind_an_ipfs_gateway(
    chain, manifest, providers, client, tmp_path, gztree, monkeypatch
):
    """The module and input trees are published as plain files (`write_static`), served by a
    static HTTP server mounted as an IPFS path gateway and named `ipfs://<cid>/`: the agent
    fetches them through its configured gateway, checks every chunk against the leaves file
    and the leaves against the root, runs the job, and the client gets its output."""
    from tests.test_cas_static import CID, StaticServer

    store = cas.Cache(tmp_path / "client-store")
    genome = dna(tmp_path)
    inputs = store.add_dir(genome)
    module = module_pack(gztree, store)
    for root in (inputs.root, module.root):
        cas.write_static(store, root, tmp_path / "site")
    static = StaticServer(tmp_path / "site")
    monkeypatch.setenv(cas.IPFS_GATEWAY_ENV, static.base)  # the agent's workers inherit it
    try:
        spec = gzip_spec(gztree, store, f"ipfs://{CID}/", inputs, args=["/input", "/output"])
        cs = ComputeShare.from_manifest(manifest, account=client)
        job_id = cs.post_job(
            spec, job_requirements(compute_seconds=FUEL // 10**9), price=100 * TOKEN,
            replicas=1, duration=DAY,
        )  # fmt: skip
        agent = agent_for(manifest, providers[0], tmp_path)
        run_until_final(chain, cs, job_id, [agent])
    finally:
        static.close()
    assert static.seen.count("leaves") >= 2  # both trees came from the static host
    assert static.chunks_served() >= cas.chunk_count(inputs.size) + cas.chunk_count(module.size)
    assert agent.journal.done["0x" + job_id.hex()]["outcome"] == "completed"
    server = ResultServer(agent.journal, outputs=agent.data / "outputs").start()
    try:
        result = cs.result(job_id, [server.url])
        files = cs.output_files(
            job_id, result, tmp_path / "files", [server.url], cache=tmp_path / "dl"
        )
    finally:
        server.stop()
    packed = gzip.decompress((files / "reads.fa.gz").read_bytes())
    assert packed == (genome / "reads.fa").read_bytes()

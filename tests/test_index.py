"""The event index against a small market (`scene`) on the local node: what it holds equals what the
contracts' views say; it resumes, is idempotent, rolls back a reorg, pages around a node
that caps log ranges, and refuses another deployment's database.

Every test runs twice: on SQLite and on a real PostgreSQL server (tests/postgres.py starts
one per test process). Without PostgreSQL installed those are skipped, or fail in CI."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import select

from computeshare.index import EventIndex, IndexFailure, events
from computeshare.jobs import JobBook
from computeshare.specs import device_spec
from tests.market import TOKEN, build_market
from tests.postgres import PostgresServer, find_binaries, install

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def scene(project, chain, accounts, tmp_path_factory):
    return build_market(project, chain, accounts, tmp_path_factory.mktemp("scene"))


def _missing(problem: str):
    message = f"the PostgreSQL runs of the index tests need {problem}"
    if IN_CI:  # CI installs both: their absence there is a broken set-up, not a skip
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of this test process's own, stopped and removed at the end."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg (`make setup` installs it)")
    binaries = find_binaries()
    if binaries is None:  # CI: .ci/run may still be installing it; wait, or install it
        problem = install() if IN_CI else "the `postgresql` package: apt-get install postgresql"
        binaries = find_binaries()
        if binaries is None:
            _missing(f"PostgreSQL's initdb and postgres ({problem})")
    server = PostgresServer(binaries)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """Where an index lives: `store(name)` is a SQLite file or a PostgreSQL database of that
    name, new to the test (the same name again: the same one)."""
    made: dict[str, str] = {}

    def where(name: str = "index") -> str:
        if name not in made:
            if request.param == "sqlite":
                made[name] = str(tmp_path / f"{name}.sqlite")
            else:
                made[name] = request.getfixturevalue("postgres").database()
        return made[name]

    where.backend = request.param
    return where


def open_index(scene, chain, where: str, **options):
    return EventIndex.open(where, scene.cs.manifest, chain.provider.web3, **options)


def test_index_holds_what_the_views_say(scene, chain, store):
    index = open_index(scene, chain, store())
    report = index.sync()
    assert report.events > 50 and report.skipped == 0
    cs = scene.cs
    statuses = {row["job_id"]: row["status"] for row in index.jobs(limit=100)}
    names = {1: "open", 2: "disputed", 3: "finalized", 4: "cancelled"}
    for job_id in scene.jobs.values():
        view = cs.escrow_view.job(job_id)
        assert statuses["0x" + job_id.hex()] == names[view.status]
    assert index.job_count() == {"finalized": 2, "disputed": 1, "cancelled": 1, "open": 1}
    replicated = index.job("0x" + scene.jobs["replicated"].hex())
    assert replicated["replica_states"] == {0: "completed", 1: "completed", 2: "slashed"}
    assert [s["step"] for s in replicated["steps"]].count("revealed") == 3
    paid = index.job("0x" + scene.jobs["paid"].hex())
    assert paid["result"]["output"] == "0x" + b"hello".hex() and paid["result"]["fuel"] == 1_234
    for pool in index.pools():
        onchain = cs.staking.pool(pool["provider"])
        assert int(pool["own_stake"]) == onchain.own_stake
        assert int(pool["delegated"]) == onchain.delegated_tokens
        assert int(pool["locked"]) == onchain.locked
    for device in index.devices():
        record = cs.escrow_view.device_record(device["device_id"])
        assert (device["completed"], device["slashed"]) == (record.completed, record.slashed)
    (proposal,) = index.proposals()
    assert proposal["state_name"] == "Executed"
    assert int(proposal["for_"]) == 60_000_000 * TOKEN
    detail = index.proposal(proposal["proposal_id"])
    assert detail["decoded"] == ["JobEscrow.set_parameter(key=0, new_value=100)"]
    assert len(detail["votes"]) == 3
    address, balance = index.treasury_balance()
    assert balance == cs.token.balanceOf(address) and address == cs.timelock.address
    (slash,) = index.slash_list()
    assert int(slash["total"]) == 20 * TOKEN


def test_sync_resumes_and_a_page_read_twice_adds_nothing(scene, chain, store):
    head = chain.blocks.height
    index = open_index(scene, chain, store(), page=7)
    middle = (index.cursor() + head) // 2
    index.sync(to_block=middle)
    assert index.cursor() == middle
    index.sync()
    once = index.counts()
    index.rollback(middle - 3)  # as if the last pages were cut off before their commit
    index.sync()
    assert index.counts() == once
    again = open_index(scene, chain, store(), page=10_000)  # the same file, reopened
    assert again.sync().events == 0 and again.counts() == once


def test_a_reorg_is_rolled_back_and_read_again(scene, chain, store):
    index = open_index(scene, chain, store())
    index.sync()
    before = index.counts()
    snapshot = chain.snapshot()
    scene.cs.token.transfer(scene.providers[0], TOKEN, sender=scene.client)
    index.sync()
    assert index.counts()["events"] == before["events"] + 1
    chain.restore(snapshot)  # the block with the transfer is gone...
    chain.mine(2)  # ...and other blocks take its height
    report = index.sync()
    assert report.rolled_back >= 1
    assert index.counts() == before


def test_a_node_that_caps_log_ranges_is_paged_around(scene, chain, store):
    provider = chain.provider.web3.provider
    real = provider.make_request
    refused, answered = [], []

    def capped(method, params):
        if method == "eth_getLogs":
            span = int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16) + 1
            if span > 5:
                refused.append(span)
                return {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "error": {"code": -32005, "message": "max range 5"},
                }
            answered.append(span)
        return real(method, params)

    provider.make_request = capped
    try:
        index = open_index(scene, chain, store(), page=1_000)
        index.sync()
    finally:
        provider.make_request = real
    assert 1 <= len(refused) <= 10  # the page halves on each refusal, then stays small
    assert max(answered) <= 5
    assert index.counts()["jobs"] == 5


def test_another_deployments_database_is_refused(scene, chain, store):
    open_index(scene, chain, store()).sync()
    other = dict(scene.cs.manifest)
    other["contracts"] = {
        **other["contracts"],
        "JobEscrow": {"address": "0x" + "11" * 20, "block": 1},
    }
    with pytest.raises(IndexFailure, match="this index holds escrow"):
        EventIndex.open(store(), other, chain.provider.web3)


def test_a_database_that_cannot_be_reached_is_one_clear_error(scene, chain):
    url = "postgresql://reader:secret@127.0.0.1:1/index"  # nothing listens on port 1
    with pytest.raises(IndexFailure, match="cannot open the index database") as raised:
        open_index(scene, chain, url)
    message = str(raised.value)
    assert "127.0.0.1:1" in message and "secret" not in message and "\n" not in message


def test_id_prefixes_resolve_when_unambiguous(scene, chain, store):
    from computeshare.index import jobs

    index = open_index(scene, chain, store())
    index.sync()
    full = "0x" + scene.jobs["paid"].hex()
    assert index.resolve(jobs, "job_id", full[:12]) == full
    with pytest.raises(IndexFailure, match="no job id starts with"):
        index.resolve(jobs, "job_id", "0x" + ("0" if full[2] != "0" else "1") * 12)
    with pytest.raises(IndexFailure, match="at least 6 hex digits"):
        index.resolve(jobs, "job_id", "0x12")


def test_job_look_ups_from_the_index_equal_those_from_the_logs(scene, chain, store):
    cs = scene.cs
    start = cs.manifest["contracts"]["JobEscrow"]["block"]
    from_logs = JobBook(cs.escrow, cs.escrow_view, start)
    from_index = JobBook(cs.escrow, cs.escrow_view, start, index=open_index(scene, chain, store()))
    for job_id in scene.jobs.values():
        assert from_index.terms(job_id) == from_logs.terms(job_id)
        assert from_index.replica(job_id) == from_logs.replica(job_id)
    assert from_index.replica(scene.jobs["paid"])[0] == scene.providers[0].address


def test_index_and_dashboard_commands(scene, chain, store, tmp_path):
    from click.testing import CliRunner

    from computeshare.cli import main

    where = ["--manifest", str(scene.manifest_path), "--network", chain.provider.uri]
    # a plain postgresql:// URL, as a user types it (the CLI picks the psycopg 3 driver)
    db = store("cli").replace("postgresql+psycopg://", "postgresql://")
    runner = CliRunner(env={"COMPUTESHARE_TRACEBACK": "1"})
    result = runner.invoke(main, ["index", "--db", str(db), *where])
    assert result.exit_code == 0, result.output
    assert "5 jobs" in result.output and "1 proposals" in result.output
    again = runner.invoke(main, ["index", "--db", str(db), *where])
    assert ": 0 events" in again.output  # resumed: nothing new to read
    jobs = runner.invoke(main, ["show", "jobs", "--db", str(db), *where]).output
    assert jobs.count("finalized") == 2 and "completed,completed,slashed" in jobs
    assert "disputed" in jobs and "cancelled" in jobs
    pools = runner.invoke(main, ["show", "pools", "--db", str(db), *where]).output
    assert "5,000" in pools and "20" in pools  # the delegation; the slash
    proposals = runner.invoke(main, ["show", "proposals", "--db", str(db), *where]).output
    assert "Executed" in proposals and "Lower the fee" in proposals
    report = tmp_path / "report"
    result = runner.invoke(main, ["dashboard", "--db", str(db), "--static", str(report), *where])
    assert result.exit_code == 0, result.output
    page = (report / "index.html").read_text()
    assert "jobs.html" in page and (report / "jobs.html").exists()
    job_page = report / "jobs" / f"0x{scene.jobs['replicated'].hex()}.html"
    assert "slashed" in job_page.read_text()
    other = tmp_path / "other.json"
    other.write_text(scene.manifest_path.read_text().replace('"chain_id": 31337', '"chain_id": 5'))
    result = runner.invoke(
        main, ["index", "--db", str(db), "--manifest", str(other), "--network", chain.provider.uri]
    )
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1, result.output


# ------------------------------------------------------------------ attacks on the index


def test_a_fuel_above_signed_64_bits_does_not_stop_the_index(scene, chain, store):
    """`submit` takes any uint64 fuel: 2**64 - 1 once overflowed SQLite's signed integers and
    stopped every index on the chain at that page."""
    cs, provider = scene.cs, scene.providers[0]
    deadline = chain.pending_timestamp + 86_400
    spec = b'{"workload": "sha256-chain", "input": {"seed": "x", "rounds": 1}}'
    reqs = (0, 0, 0, 0, 0, False, 60)
    job = cs.escrow.post(spec, reqs, TOKEN, 1, deadline, TOKEN, sender=scene.client).return_value
    cs.jobs.accept(job, 0, sender=provider)
    fuel = 2**64 - 1
    cs.escrow.submit(cs.jobs.terms(job), 0, 0, fuel, b"\x01" * 32, b"", sender=provider)
    index = open_index(scene, chain, store())
    assert index.sync().skipped == 0
    assert index.job("0x" + bytes(job).hex())["result"]["fuel"] == fuel


def test_a_reorg_below_a_gap_is_read_again_from_where_the_chains_part(scene, chain, store):
    """Only blocks with events (and page ends) keep a hash: a fork that starts in a gap below
    the newest kept block must be read from the fork point, not from that newest block."""
    index = open_index(scene, chain, store())
    index.sync()
    snapshot = chain.snapshot()
    chain.mine(3)
    scene.cs.token.transfer(scene.providers[1], 1, sender=scene.client)
    index.sync()
    chain.restore(snapshot)
    scene.cs.token.transfer(scene.providers[2], 2 * TOKEN, sender=scene.client)  # in the gap
    chain.mine(5)
    report = index.sync()
    assert report.rolled_back >= 4
    values = [
        int(e["args"]["value"])
        for e in index._rows(select(events).where(events.c.name == "Transfer"))
    ]
    assert 2 * TOKEN in values and 1 not in values  # the new fork's transfer, not the old


def test_invalid_utf8_in_a_string_does_not_hide_the_event(scene, chain, store):
    """Vyper does not check that a `String` is UTF-8: a device registered with a metadata URI
    holding a 0xff byte must still be indexed (its URI shown with a replacement character),
    and so must one holding a NUL, which PostgreSQL's text refuses."""
    from eth_abi import encode

    cs = scene.cs
    owner = chain.provider.web3.eth.accounts[15]
    cs.token.transfer(owner, 20_000 * TOKEN, sender=scene.client)
    web3 = chain.provider.web3
    approve = cs.token.approve.encode_input(cs.staking.address, 10_000 * TOKEN)
    stake = cs.staking.stake.encode_input(10_000 * TOKEN)
    spec = tuple(device_spec(gpu_count=0, gpu_model=b"\0" * 32, vram_mb=0).values())
    spec_type = "(uint16,uint32,uint8,bytes32,uint32,uint16,uint256,uint16,bytes32)"
    selector = bytes(cs.registry.register.encode_input(device_spec(), "x"))[:4]
    register = selector + encode([spec_type, "bytes"], [spec, b"http://evil/\xff\xfe\x00end"])
    for to, data in ((cs.token, approve), (cs.staking, stake), (cs.registry, register)):
        tx = web3.eth.send_transaction({"from": owner, "to": to.address, "data": data})
        assert web3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    index = open_index(scene, chain, store())
    assert index.sync().skipped == 0
    (device,) = [d for d in index.devices() if d["owner"] == owner]
    assert device["uri"] == "http://evil/\ufffd\ufffd\ufffdend"


def test_uint256_figures_round_trip(scene, chain, store):
    """Amounts are uint256: above both databases' signed 64-bit integers, they are kept as
    decimal text and in the events' JSON, and come back exact."""
    cs, top = scene.cs, 2**256 - 1
    cs.token.approve(scene.providers[0], top, sender=scene.client)
    index = open_index(scene, chain, store())
    assert index.sync().skipped == 0
    approvals = index._rows(select(events).where(events.c.name == "Approval"))
    assert top in [int(e["args"]["value"]) for e in approvals]
    staked = [int(p["own_stake"]) for p in index.pools()]
    assert max(staked) > 2**63 and sorted(staked) == sorted(
        cs.staking.pool(p["provider"]).own_stake for p in index.pools()
    )


def test_two_writers_on_one_database_write_each_page_once(scene, chain, store):
    """Two processes following the chain into one database (a dashboard and `index` run by
    cron): each page is written once, whoever gets there first; neither fails."""
    where = store()
    first, second = (open_index(scene, chain, where, page=3) for _ in range(2))
    failures: list[BaseException] = []

    def follow(index):
        try:
            index.sync()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=follow, args=(i,)) for i in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures, failures
    clean = open_index(scene, chain, store("clean"))
    clean.sync()
    assert first.counts() == clean.counts() and first.cursor() == clean.cursor()


def test_a_hostile_node_s_malformed_logs_are_skipped_not_fatal(scene, chain, store):
    provider = chain.provider.web3.provider
    real = provider.make_request

    def hostile(method, params):
        answer = real(method, params)
        if method == "eth_getLogs" and answer.get("result"):
            good = answer["result"][0]
            answer["result"] += [
                {**good},  # a repeat
                {**good, "logIndex": "0x7fffffff"},  # where snapshot rows live
                {**good, "blockNumber": "0xzz"},
                {**good, "blockNumber": hex(10**12)},  # outside the page
                {**good, "removed": True, "logIndex": "0x999"},
                {**good, "topics": ["0x" + "ab" * 32], "logIndex": "0x998"},  # no such event
                {"address": good["address"]},
            ]
        return answer

    provider.make_request = hostile
    try:
        index = open_index(scene, chain, store())
        report = index.sync()
    finally:
        provider.make_request = real
    assert report.skipped >= 7
    clean = open_index(scene, chain, store("clean"))
    assert clean.sync().events == report.events
    assert index.counts() == clean.counts()

"""The event index against a small market on the local node: what it holds equals what the
contracts' views say; it resumes, is idempotent, rolls back a reorg, pages around a node
that caps log ranges, and refuses another deployment's database."""

from __future__ import annotations

import pytest

from computeshare.index import EventIndex, IndexFailure
from computeshare.jobs import JobBook
from tests.market import TOKEN, build_market


@pytest.fixture(scope="module")
def market(project, chain, accounts, tmp_path_factory):
    return build_market(project, chain, accounts, tmp_path_factory.mktemp("market"))


def open_index(market, chain, tmp_path, **options):
    return EventIndex.open(
        tmp_path / "index.sqlite", market.cs.manifest, chain.provider.web3, **options
    )


def test_index_holds_what_the_views_say(market, chain, tmp_path):
    index = open_index(market, chain, tmp_path)
    report = index.sync()
    assert report.events > 50 and report.skipped == 0
    cs = market.cs
    statuses = {row["job_id"]: row["status"] for row in index.jobs(limit=100)}
    names = {1: "open", 2: "disputed", 3: "finalized", 4: "cancelled"}
    for job_id in market.jobs.values():
        view = cs.escrow_view.job(job_id)
        assert statuses["0x" + job_id.hex()] == names[view.status]
    assert index.job_count() == {"finalized": 2, "disputed": 1, "cancelled": 1, "open": 1}
    replicated = index.job("0x" + market.jobs["replicated"].hex())
    assert replicated["replica_states"] == {0: "completed", 1: "completed", 2: "slashed"}
    assert [s["step"] for s in replicated["steps"]].count("revealed") == 3
    paid = index.job("0x" + market.jobs["paid"].hex())
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


def test_sync_resumes_and_a_page_read_twice_adds_nothing(market, chain, tmp_path):
    head = chain.blocks.height
    index = open_index(market, chain, tmp_path, page=7)
    middle = (index.cursor() + head) // 2
    index.sync(to_block=middle)
    assert index.cursor() == middle
    index.sync()
    once = index.counts()
    index.rollback(middle - 3)  # as if the last pages were cut off before their commit
    index.sync()
    assert index.counts() == once
    again = open_index(market, chain, tmp_path, page=10_000)  # the same file, reopened
    assert again.sync().events == 0 and again.counts() == once


def test_a_reorg_is_rolled_back_and_read_again(market, chain, tmp_path):
    index = open_index(market, chain, tmp_path)
    index.sync()
    before = index.counts()
    snapshot = chain.snapshot()
    market.cs.token.transfer(market.providers[0], TOKEN, sender=market.client)
    index.sync()
    assert index.counts()["events"] == before["events"] + 1
    chain.restore(snapshot)  # the block with the transfer is gone...
    chain.mine(2)  # ...and other blocks take its height
    report = index.sync()
    assert report.rolled_back >= 1
    assert index.counts() == before


def test_a_node_that_caps_log_ranges_is_paged_around(market, chain, tmp_path):
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
        index = open_index(market, chain, tmp_path, page=1_000)
        index.sync()
    finally:
        provider.make_request = real
    assert 1 <= len(refused) <= 10  # the page halves on each refusal, then stays small
    assert max(answered) <= 5
    assert index.counts()["jobs"] == 5


def test_another_deployments_database_is_refused(market, chain, tmp_path):
    open_index(market, chain, tmp_path).sync()
    other = dict(market.cs.manifest)
    other["contracts"] = {
        **other["contracts"],
        "JobEscrow": {"address": "0x" + "11" * 20, "block": 1},
    }
    with pytest.raises(IndexFailure, match="this index holds escrow"):
        EventIndex.open(tmp_path / "index.sqlite", other, chain.provider.web3)


def test_id_prefixes_resolve_when_unambiguous(market, chain, tmp_path):
    from computeshare.index import jobs

    index = open_index(market, chain, tmp_path)
    index.sync()
    full = "0x" + market.jobs["paid"].hex()
    assert index.resolve(jobs, "job_id", full[:12]) == full
    with pytest.raises(IndexFailure, match="no job id starts with"):
        index.resolve(jobs, "job_id", "0x" + ("0" if full[2] != "0" else "1") * 12)
    with pytest.raises(IndexFailure, match="at least 6 hex digits"):
        index.resolve(jobs, "job_id", "0x12")


def test_job_look_ups_from_the_index_equal_those_from_the_logs(market, chain, tmp_path):
    cs = market.cs
    start = cs.manifest["contracts"]["JobEscrow"]["block"]
    from_logs = JobBook(cs.escrow, cs.escrow_view, start)
    from_index = JobBook(
        cs.escrow, cs.escrow_view, start, index=open_index(market, chain, tmp_path)
    )
    for job_id in market.jobs.values():
        assert from_index.terms(job_id) == from_logs.terms(job_id)
        assert from_index.replica(job_id) == from_logs.replica(job_id)
    assert from_index.replica(market.jobs["paid"])[0] == market.providers[0].address


def test_index_and_dashboard_commands(market, chain, tmp_path):
    from click.testing import CliRunner

    from computeshare.cli import main

    where = ["--manifest", str(market.manifest_path), "--network", chain.provider.uri]
    db = tmp_path / "cli.sqlite"
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
    job_page = report / "jobs" / f"0x{market.jobs['replicated'].hex()}.html"
    assert "slashed" in job_page.read_text()
    other = tmp_path / "other.json"
    other.write_text(market.manifest_path.read_text().replace('"chain_id": 31337', '"chain_id": 5'))
    result = runner.invoke(
        main, ["index", "--db", str(db), "--manifest", str(other), "--network", chain.provider.uri]
    )
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1, result.output

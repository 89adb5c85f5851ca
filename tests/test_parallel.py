"""`make parallel` (devtools.parallel): storage conflicts between the transactions of one
block. The tool runs at N = 20 on a plain anvil it starts itself (not ape's test network);
conflict counts are deterministic, so they are asserted exactly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import PROJECT_ROOT
from devtools.parallel import conflicting_pairs, critical_path, summary

N = 20
ANVIL_PATH = os.pathsep.join([str(PROJECT_ROOT / "node_modules" / ".bin"), os.environ["PATH"]])
PER_USER = (
    "token transfer",
    "post (k=1)",
    "accept (k=1)",
    "commit (k=1)",
    "submit (k=1)",
    "reveal (k=1)",
)


def test_conflict_arithmetic():
    """Four transactions: 0 writes a, which 2 reads; 2 writes c, which 3 reads; 1 is alone."""
    reads = [{"a"}, {"b"}, {"a", "c"}, {"c"}]
    writes = [{"a"}, {"b"}, {"c"}, set()]
    assert conflicting_pairs(reads, writes) == [(0, 2), (2, 3)]
    assert critical_path(4, [(0, 2), (2, 3)]) == 3
    result = summary(reads, writes)
    assert result["pairs"] == 2
    assert result["rate"] == pytest.approx(2 / 6)
    assert result["critical_path"] == 3
    assert result["speedup"] == pytest.approx(4 / 3)


def test_conflict_directions():
    """A later write of an earlier read conflicts too; reads alone never do."""
    assert conflicting_pairs([{"x"}, set()], [set(), {"x"}]) == [(0, 1)]
    assert conflicting_pairs([{"x"}, {"x"}], [set(), set()]) == []
    independent = summary([{k} for k in "abcde"], [{k} for k in "abcde"])
    assert (independent["pairs"], independent["critical_path"]) == (0, 1)
    assert independent["speedup"] == 5.0
    chained = summary([{"s"}] * 4, [{"s"}] * 4)
    assert (chained["pairs"], chained["rate"], chained["critical_path"]) == (6, 1.0, 4)


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict[str, dict]:
    if shutil.which("anvil", path=ANVIL_PATH) is None:
        pytest.skip("anvil is not installed (make setup puts it in node_modules/.bin)")
    out = tmp_path_factory.mktemp("parallel") / "rows.json"
    done = subprocess.run(
        [sys.executable, "-m", "devtools.parallel", "--n", str(N), "--json", str(out)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PATH": ANVIL_PATH},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "transient storage" in done.stdout  # the note on what the tracer cannot see
    return {row["operation"]: row for row in json.loads(Path(out).read_text())}


def test_one_block_per_operation(rows):
    """N transactions a block; the k = 3 blocks serve N // 3 jobs (three replicas each)."""
    triples = N // 3
    for name, row in rows.items():
        expected = N if "k=3" not in name else 3 * triples
        if name.startswith("finalize k=3"):
            expected = triples
        assert row["transactions"] == expected, name
    assert f"finalize k=3 ({triples} jobs)" in rows


@pytest.mark.parametrize("operation", PER_USER)
def test_per_user_storage_does_not_conflict(rows, operation):
    row = rows[operation]
    assert (row["pairs"], row["critical_path"], row["speedup"]) == (0, 1, N)


@pytest.mark.parametrize(
    "operation",
    ["stake", "delegate", "request thaw", "undelegate", "withdraw stake", "withdraw delegation"],
)
def test_stakes_in_different_pools_do_not_conflict(rows, operation):
    """Each pool's tokens sit in its own custody account in the token: stakes, delegations
    and their exits in different pools touch disjoint storage (before: every one wrote
    Staking's balance word in the token, so all pairs conflicted). The exits come from pools
    whose delegators' income JobEscrow still holds: it is collected only when the pool's
    custody account could not pay without it, so they do not write JobEscrow's word."""
    row = rows[operation]
    assert (row["pairs"], row["critical_path"]) == (0, 1), row["hot_names"]


@pytest.mark.parametrize("operation", ["deposit", "withdraw", "withdraw earnings"])
def test_deposits_and_withdrawals_of_different_shards_do_not_conflict(rows, operation):
    """JobEscrow keeps deposits in 1,024 custody shards of the token, by the depositor's
    address: deposits and a client's withdrawals touch its own shard's word, a provider's
    withdrawal the shard of a client that paid it (before: every one wrote JobEscrow's
    balance word, so all pairs conflicted). Two users of one shard would conflict; none
    of these N do."""
    row = rows[operation]
    assert (row["pairs"], row["critical_path"]) == (0, 1), row["hot_names"]


@pytest.mark.parametrize(
    "operation", ["finalize k=1, no delegators", "finalize k=1, delegators", "finalize k=3"]
)
def test_settlements_of_independent_jobs_do_not_conflict(rows, operation):
    """Each fee accrues in its device's record and the delegators' cut stays with JobEscrow
    in the pool's own word: no settlement writes a word another one touches (before: 16 fee
    shards, and the token balance words of JobEscrow and Staking for pools with delegators)."""
    (row,) = [row for name, row in rows.items() if name.startswith(operation)]
    assert (row["pairs"], row["critical_path"]) == (0, 1), row["hot_names"]
    assert row["speedup"] == row["transactions"]

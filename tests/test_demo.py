"""`make demo`, the main job, runs end to end: its own node, agent processes, a summary."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from devtools import PROJECT_ROOT


def test_demo_runs_the_market_end_to_end():
    ape = Path(sys.executable).with_name("ape")
    done = subprocess.run(
        [str(ape), "run", "demo"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The agents' log lines name the providers as the tables do, not by address.
    for name in ("alpha", "bravo", "mallory", "delta"):
        assert re.search(rf"^\[{name}\] serving device 0x", out, re.M), name
    assert not re.search(r"^\[0x", out, re.M)
    jobs = out[out.index("\nJobs\n") : out.index("\nMoney")]
    assert re.search(r"hash-k3 .* finalized .*mallory:slashed", jobs)
    assert re.search(r"hash-k1-disputed .*mallory:slashed\s+for client", jobs)
    # Any three of the four devices may take it: which ones is a race between the agents.
    assert re.search(r"montecarlo-k3 .* finalized\s+ok\s+[\d,]+ .*completed 48.75", jobs)
    assert re.search(r"trap-k1 .* finalized\s+trap\s+[\d,]+ .*delta:completed 48.75", jobs)
    # Real work: zlib's gzip on a few MiB of input fetched by its tree, k = 3, output files
    # fetched from the replicas and checked.
    assert re.search(r"gzip-k3 .* finalized\s+ok\s+[\d,]+ .*completed 48.75", jobs)
    assert "chr1.fa.gz: " in out and "gunzips to the input's 2,097,152" in out
    assert "fee is now 1.00%" in out
    assert "protocol fee: 2.50% before the proposal, 1.00% after" in out
    assert re.search(r"Governor\.castVoteBySig\s+1\s", out)
    # The dashboard snapshot of the demo's market, to open from disk.
    report = PROJECT_ROOT / "build" / "demo-report"
    assert re.search(r"Dashboard snapshot: build/demo-report/index.html \(\d+ pages", out)
    overview = (report / "index.html").read_text()
    assert "jobs.html" in overview and "<script" not in overview
    assert len(list((report / "jobs").glob("*.html"))) == 5  # one page per demo job

"""The dashboard as files: `write_static` renders every page with relative links, so the
snapshot opens from disk with no server and no network."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from computeshare import index as ix
from computeshare.dashboard.views import ADDRESS, JOB_ID, JOB_STATUSES, Links, Site, jobs_file
from computeshare.format import hex_id


def write_static(index: ix.EventIndex, out_dir: str | Path) -> list[Path]:
    """Renders every page to `out_dir` as HTML files with relative links (index.html,
    devices.html, jobs.html and its pages, jobs/<id>.html, pools.html, pools/<address>.html,
    proposals.html, proposals/<id>.html), so the snapshot opens from disk with no server.
    Returns the files written."""
    out = Path(out_dir)
    site = Site(index, snapshot=True)
    written: list[Path] = []

    def write(name: str, template: str, context: dict, current: str) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        html = site.render(template, context, Links(static=True, depth=name.count("/")), current)
        path.write_text(html, encoding="utf-8")
        written.append(path)

    write("index.html", "overview.html", site.overview(), "overview")
    write("devices.html", "devices.html", site.devices(), "devices")
    for status in (None, *JOB_STATUSES):
        first = site.jobs(status, 1)
        for number in range(1, first["pages"] + 1):
            context = first if number == 1 else site.jobs(status, number)
            write(jobs_file(status, number), "jobs.html", context, "jobs")
    with index.engine.connect() as db:
        job_ids = db.execute(select(ix.jobs.c.job_id).order_by(ix.jobs.c.block)).scalars().all()
    for job_id in job_ids:
        if JOB_ID.match(job_id):
            write(f"jobs/{job_id}.html", "job.html", site.job(job_id), "jobs")
    pools = site.pools()
    write("pools.html", "pools.html", pools, "pools")
    for pool in pools["pools"]:
        if ADDRESS.match(pool["provider"]):
            write(
                f"pools/{pool['provider']}.html", "pool.html", site.pool(pool["provider"]), "pools"
            )
    proposals = site.proposals()
    write("proposals.html", "proposals.html", proposals, "proposals")
    for proposal in proposals["proposals"]:
        if proposal["proposal_id"].isdecimal():
            pid = hex_id(proposal["proposal_id"])
            write(f"proposals/{pid}.html", "proposal.html", site.proposal(pid), "proposals")
    (out / "snapshot.json").write_text(
        json.dumps(
            {"block": index.cursor(), "chain_time": index.head_time(), "pages": len(written)},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return written

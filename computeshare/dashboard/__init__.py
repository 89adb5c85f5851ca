"""The dashboard: a read-only web UI over the event index (`computeshare.index`).

    app = create_app(index)                  # a Starlette app
    serve(index, "127.0.0.1", 8000)          # the same, under uvicorn
    write_static(index, "build/report")      # every page as HTML files with relative links

Pages are rendered on the server from the Jinja2 templates in computeshare/templates/, with
autoescaping on: whatever an event carries (a device's metadata URI, a proposal's
description, a vote's reason, a job's spec and output) is hostile input and is shown as
text, never as markup, and only an http(s) URI becomes a link. The charts are inline SVG
(`charts`). A page loads no script, no stylesheet file, no font and nothing from another
host, so the pages written by `write_static` open from disk with no server and no network.

The index is only read: `create_app(index, sync_interval=s)` also follows the chain by
calling `index.sync()` every `s` seconds in a background thread.

One module a concern: `views` (the pages' view models, formatters and links), `charts`
(inline SVG), `app` (the Starlette app, `serve` and the follower) and `static` (the static
snapshot). The names below are importable from `computeshare.dashboard` itself.
"""

from computeshare.dashboard.app import SyncStatus, create_app, serve
from computeshare.dashboard.charts import Buckets, bar_chart, step_chart
from computeshare.dashboard.static import write_static
from computeshare.dashboard.views import (
    Links,
    NotFound,
    Site,
    amount,
    decoded_output,
    jobs_file,
    mib,
    percent,
    proposal_label,
    relative,
    spec_summary,
    text_of,
    utc,
    web_link,
)

__all__ = [
    "Buckets",
    "Links",
    "NotFound",
    "Site",
    "SyncStatus",
    "amount",
    "bar_chart",
    "create_app",
    "decoded_output",
    "jobs_file",
    "mib",
    "percent",
    "proposal_label",
    "relative",
    "serve",
    "spec_summary",
    "step_chart",
    "text_of",
    "utc",
    "web_link",
    "write_static",
]

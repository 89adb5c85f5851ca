"""How the dashboard writes values: amounts, times, ids, requirements, rulings, results and
specs as text or markup for its templates (`computeshare.dashboard.views` registers them).
Whatever a value carries is treated as hostile: text is escaped, only an http(s) URI becomes
a link.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup

from computeshare.format import duration, hex_id, tokens, utc_text

RUN_STATUS = {0: "ok", 1: "trap", 2: "out of fuel", 3: "invalid"}  # computeshare.sandbox


def amount(wei: int | str | None) -> Markup:
    """An amount in tokens; the exact wei in the `data` element's value (and its tooltip)."""
    if wei is None:
        return Markup("&ndash;")
    value = int(wei)
    return Markup('<data value="{0}" title="{0} wei">{1}</data>').format(value, tokens(value))


def utc(timestamp: int | None) -> Markup:
    """A chain timestamp as a human UTC time in a `time` element."""
    if not timestamp:
        return Markup("&ndash;")
    moment = datetime.fromtimestamp(int(timestamp), UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"), utc_text(timestamp)
    )


def relative(timestamp: int | None, now: int) -> str:
    """ "in 3 h 10 min" or "2 d ago", against the chain's time."""
    if not timestamp or not now:
        return ""
    delta = int(timestamp) - int(now)
    return f"in {duration(delta)}" if delta > 0 else f"{duration(delta)} ago"


def percent(bps: int | None) -> str:
    """Basis points as a percentage: 250 -> "2.5 %", 1000 -> "10 %"."""
    text = f"{Decimal(int(bps or 0)) / 100:f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " %"


def text_of(value: Any) -> str:
    """A bytes field (a GPU model) as text: NUL padding dropped, invalid UTF-8 replaced."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).rstrip(b"\0").decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def web_link(uri: str | None) -> str | None:
    """The URI if it is http(s) with a host (safe as a link), else None (shown as text)."""
    if not uri or any(c.isspace() or ord(c) < 32 for c in uri):
        return None
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    return uri if parts.scheme in ("http", "https") and parts.netloc else None


def mib(value: int | None) -> str:
    value = int(value or 0)
    return f"{value / 1024:,.0f} GiB" if value >= 1024 and value % 1024 == 0 else f"{value:,} MiB"


def proposal_label(proposal_id: str | int) -> str:
    """A proposal id (OpenZeppelin's `hashProposal`) in its short hex form, which every
    command takes as a prefix."""
    return hex_id(proposal_id, full=False)


def decoded_output(hex_text: str | None) -> str | None:
    """An output's bytes as text when they are printable UTF-8, else None."""
    if not hex_text:
        return None
    raw = bytes.fromhex(hex_text.removeprefix("0x"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text and all(c.isprintable() or c in "\n\t" for c in text) else None


def requirements_text(packed: int | str) -> list[str]:
    """A job's packed requirements (`computeshare.jobs.REQUIREMENT_BITS`) in words:
    ["at least 8 CPU cores", "at least 1,024 MB memory", "at least 1 GPU, 1,024 MB VRAM",
    "any region", "attested or not", "600 compute-seconds"]."""
    from computeshare.jobs import unpack_requirements

    r = unpack_requirements(int(packed))
    cores, gpus = r["min_cpu_cores"], r["min_gpu_count"]
    gpu = f"at least {gpus} {'GPU' if gpus == 1 else 'GPUs'}"
    if gpus or r["min_vram_mb"]:
        gpu += f", {r['min_vram_mb']:,} MB VRAM"
    return [
        f"at least {cores:,} CPU {'core' if cores == 1 else 'cores'}",
        f"at least {r['min_memory_mb']:,} MB memory",
        gpu,
        f"region {r['region']}" if r["region"] else "any region",
        "attested devices only" if r["attested_only"] else "attested or not",
        f"{r['compute_seconds']:,} compute-seconds",
    ]


def ruling_text(for_client: Any, replicas: int) -> str:
    """A `Ruled` event's side in words: `for_client` is read for k = 1 only."""
    if replicas > 1:
        return "for the replicas that revealed the result the arbiter found right"
    return "for the client" if for_client in (True, "true", 1) else "for the provider"


def result_verdict(job: dict) -> str | None:
    """What became of a k = 1 job's submitted result: its run status as the provider
    reported it, unless a dispute refused it (the arbiter ruled for the client) or holds
    it (disputed, no ruling yet). None without a result."""
    if job.get("result") is None:
        return None
    reported = RUN_STATUS.get(job["result"]["status"], str(job["result"]["status"]))
    ruled = [s for s in job["steps"] if s["step"] == "ruled"]
    if ruled and int(job["terms"]["replicas"]) == 1:
        if ruling_text(ruled[-1]["detail"].get("for_client"), 1) == "for the client":
            return f"refused: the arbiter ruled for the client (the provider reported {reported})"
        return f"{reported}, upheld: the arbiter ruled for the provider"
    if job["status"] == "disputed":
        return f"{reported} as the provider reported it; disputed by the client, not ruled yet"
    return reported


def spec_summary(spec_hex: str) -> dict:
    """A job spec as the agent reads it: its workload and input if it validates, else why
    not; and its text (specs are JSON) when it is UTF-8."""
    from computeshare.workloads import WorkloadError, decode_spec

    raw = bytes.fromhex(spec_hex.removeprefix("0x"))
    summary: dict[str, Any] = {"bytes": len(raw), "workload": None, "problem": None}
    try:
        summary["text"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        summary["text"] = None
    try:
        job = decode_spec(raw)
    except WorkloadError as error:
        summary["problem"] = str(error)
    except Exception as error:  # a spec is hostile: whatever it does, the page still renders
        summary["problem"] = f"not a workload spec ({type(error).__name__})"
    else:
        summary["workload"] = job.workload
        summary["encrypted"] = job.encrypt_to is not None
        summary["input"] = job.input.model_dump_json(indent=2)
    if summary["text"] is not None and len(summary["text"]) > 2_000:
        summary["text"] = summary["text"][:2_000] + " …"
    return summary


# ---------------------------------------------------------------- links

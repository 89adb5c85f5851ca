"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright against
the dashboard served by uvicorn over an index of a small market (`scene`) on the local node.

Every page loads without console errors or failed requests, the figures it shows equal the
contracts' views, links navigate, hostile strings from events are shown as text and never
run, and the static snapshot opens from disk. Screenshots of every page are kept under
build/test-artifacts/dashboard/. One market, one index, one server and one browser serve
the whole module.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest

from computeshare.constants import DAY, TOKEN
from computeshare.dashboard import (
    Links,
    amount,
    create_app,
    percent,
    utc,
    views,
    web_link,
    write_static,
)
from computeshare.dashboard.app import _follow
from computeshare.format import hex_id, tokens
from computeshare.governance import call, propose
from computeshare.index import EventIndex, IndexFailure
from computeshare.jobs import pack_requirements
from computeshare.sandbox import STATUS_OK, RunResult
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import encode_spec
from tests import debian
from tests.market import build_market

ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
# Playwright adds --headless (headless=True) and a fresh --user-data-dir of its own to every
# launch; without the background-networking flags Chromium dials Google's services, which
# are refused here and would show up as failed requests.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE_URI = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
SCRIPT_URI = "javascript:window.pwned = 3"
HOSTILE_DESCRIPTION = '<script>window.pwned = 4</script>\n<b onmouseover="window.pwned = 5">Raise'
JOB_NAMES = {1: "open", 2: "disputed", 3: "finalized", 4: "cancelled"}


# ---------------------------------------------------------------- the browser


def find_chromium() -> str | None:
    for candidate in (CHROMIUM, shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def install_chromium() -> str:
    """Debian's chromium package (`tests.debian.install`); "" when done, else why not."""
    return debian.install("chromium")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        problem = install_chromium()
        path = find_chromium()
        if path is None:
            pytest.skip(f"the dashboard's browser tests need Chromium at {CHROMIUM}: {problem}")
    return path


@pytest.fixture(scope="module")
def browser(chromium):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


class Tab:
    """A page that records what went wrong: console errors, script errors, failed requests
    and error responses."""

    def __init__(self, page):
        self.page = page
        self.problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on(
            "response",
            lambda r: r.status >= 400 and self.problems.append(f"{r.status}: {r.url}"),
        )

    def open(self, url: str, status: int = 200):
        response = self.page.goto(url)
        assert response is not None and response.status == status, url
        return self.page

    def clean(self, what: str) -> None:
        problems, self.problems = self.problems, []
        assert not problems, f"{what}: {problems}"
        assert self.page.locator("script").count() == 0, f"{what}: a script element"
        assert self.page.evaluate("typeof window.pwned") == "undefined", what

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        ignore = ARTIFACTS.parent / ".gitignore"  # test output, never committed
        if not ignore.exists():
            ignore.write_text("*\n")
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    yield Tab(context.new_page())
    context.close()


# ---------------------------------------------------------------- the market and the server
# (the fixtures `scene` and `site`: module-scoped, so each has a name no other fixture has)


@pytest.fixture(scope="module")
def scene(project, chain, accounts, tmp_path_factory):
    scene = build_market(project, chain, accounts, tmp_path_factory.mktemp("scene"))
    cs = scene.cs
    # Events are hostile input: a device whose URI and GPU model are markup, one whose URI
    # is a javascript: link, and a proposal whose description is a script.
    mallory = accounts[7]
    hostile = device_spec(gpu_model=b"<i>gpu</i>".ljust(32, b"\0"))
    cs.registry.register(hostile, HOSTILE_URI, sender=mallory)
    cs.registry.register(hostile, SCRIPT_URI, sender=mallory)
    scene.devices["hostile"] = bytes(cs.registry.device_id_of(mallory, 0))
    scene.devices["script"] = bytes(cs.registry.device_id_of(mallory, 1))
    # A k = 1 result the client disputes and the arbiter refuses (rules for the client),
    # posted with requirements of its own to read back in words.
    client, provider = scene.client, scene.providers[2]
    reqs = job_requirements(
        min_cpu_cores=4, min_memory_mb=2048, min_gpu_count=0, min_vram_mb=0, region=276,
        compute_seconds=900,
    )  # fmt: skip
    spec = encode_spec("sha256-chain", {"seed": "ruled", "rounds": 3})
    deadline = chain.pending_timestamp + DAY
    posted = cs.escrow.post(spec, reqs, 10 * TOKEN, 1, deadline, 10 * TOKEN, sender=client)
    ruled = scene.jobs["ruled"] = bytes(posted.return_value)
    cs.jobs.accept(ruled, 0, sender=provider)
    cs.jobs.submit(ruled, RunResult(STATUS_OK, 7, b"wrong"), sender=provider)
    cs.jobs.dispute(ruled, sender=client)
    cs.jobs.rule(ruled, True, sender=accounts[3])
    voter = accounts[9]
    action = call(cs.escrow, "set_parameter", 0, 200)
    scene.hostile_proposal = propose(cs.governor, voter, [action], HOSTILE_DESCRIPTION)
    chain.mine()
    return scene


@pytest.fixture(scope="module")
def index(scene, chain, tmp_path_factory):
    index = EventIndex.open(
        tmp_path_factory.mktemp("index") / "index.sqlite", scene.cs.manifest, chain.provider.web3
    )
    index.sync()
    return index


@pytest.fixture(scope="module")
def site(index):
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(index), host="127.0.0.1", port=port, log_level="warning")
    site = uvicorn.Server(config)
    thread = threading.Thread(target=site.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not site.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    site.should_exit = True
    thread.join(timeout=10)


def hexid(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def wei(page, selector: str) -> int:
    """The exact amount an amount element carries."""
    return int(page.locator(f"{selector} data").first.get_attribute("value"))


# ---------------------------------------------------------------- tests


def test_every_page_loads_clean_and_is_screenshotted(tab, site, scene, index):
    pages = {
        "overview": "/",
        "devices": "/devices",
        "jobs": "/jobs",
        "jobs-finalized": "/jobs?status=finalized",
        "pools": "/pools",
        "proposals": "/proposals",
    }
    for name, job_id in scene.jobs.items():
        pages[f"job-{name}"] = f"/jobs/{hexid(job_id)}"
    for n, pool in enumerate(index.pools()):
        pages[f"pool-{n}"] = f"/pools/{pool['provider']}"
    for proposal in index.proposals():
        pid = hex_id(proposal["proposal_id"])
        pages[f"proposal-{pid}"] = f"/proposals/{pid}"
    for name, path in pages.items():
        page = tab.open(site + path)
        assert page.locator("h1").count() == 1 and page.title().endswith("ComputeShare")
        assert page.locator("nav[aria-label=Main] a[aria-current=page]").count() == 1, path
        assert page.locator("section.cli pre").inner_text().startswith("computeshare "), path
        tab.clean(path)
        tab.shot(name)
    assert len(list(ARTIFACTS.glob("*.png"))) >= len(pages)


def test_bad_ids_give_a_404_page(tab, site):
    for path in (
        "/jobs/0x" + "ab" * 32,
        "/jobs/not-a-job",
        "/jobs?status=lost",
        "/jobs?page=99",
        "/pools/0x" + "00" * 20,
        "/pools/nobody",
        "/proposals/999",
        "/proposals/x1",
        "/no/such/page",
    ):
        page = tab.open(site + path, status=404)
        assert page.locator("h1").inner_text() == "Not found", path
        assert page.locator("#error-message").inner_text(), path
        assert "Traceback" not in page.content()
        tab.problems.clear()  # the browser reports the 404 itself
    tab.shot("not-found")


def test_figures_equal_the_chains_views(tab, site, scene, index):
    cs = scene.cs
    page = tab.open(site + "/jobs")
    for job_id in scene.jobs.values():
        name = JOB_NAMES[cs.escrow_view.job(job_id).status]
        row = page.locator(f"tr[data-job='{hexid(job_id)}'] [data-field=status]")
        assert row.inner_text().strip() == name
    for job_id in scene.jobs.values():
        page = tab.open(f"{site}/jobs/{hexid(job_id)}")
        view = cs.escrow_view.job(job_id)
        assert page.locator("#job-status").inner_text().strip() == JOB_NAMES[view.status]
        assert page.locator("#replicas tbody tr").count() == view.accepted
    page = tab.open(f"{site}/jobs/{hexid(scene.jobs['paid'])}")
    assert page.locator("#output-text").inner_text() == "hello"
    assert page.locator("#output-sources a").first.get_attribute("href") == "http://127.0.0.1:1/0"
    for pool in index.pools():
        page = tab.open(f"{site}/pools/{pool['provider']}")
        onchain = cs.staking.pool(pool["provider"])
        assert wei(page, "#own-stake") == onchain.own_stake
        assert wei(page, "#delegated") == onchain.delegated_tokens
        assert wei(page, "#locked") == onchain.locked
    page = tab.open(f"{site}/proposals/{hex_id(scene.proposal_id)}")
    against, for_, abstain = cs.governor.proposalVotes(scene.proposal_id)
    assert (wei(page, "#votes-for"), wei(page, "#votes-against")) == (for_, against)
    assert wei(page, "#votes-abstain") == abstain
    assert wei(page, "#quorum") == cs.governor.proposalQuorum(scene.proposal_id)
    assert page.locator("#state").inner_text().strip() == "Executed"
    assert page.locator("#actions code").first.inner_text() == (
        "JobEscrow.set_parameter(key=0, new_value=100)"
    )
    page = tab.open(site + "/")
    assert wei(page, "#treasury-balance") == cs.token.balanceOf(cs.timelock)
    assert int(page.locator("#job-count").inner_text()) == len(scene.jobs)
    for status, count in index.job_count().items():
        assert page.locator(f"#jobs-by-status [data-status={status}]").inner_text() == str(count)
    assert page.locator("svg.chart").count() == 4
    page = tab.open(site + "/devices")
    for device_id in scene.devices.values():
        record = cs.escrow_view.device_record(device_id)
        row = page.locator(f"tr[id='device-{hexid(device_id)}']")
        assert row.locator("[data-field=completed]").inner_text() == str(record.completed)
        assert row.locator("[data-field=slashed]").inner_text() == str(record.slashed)
    tab.clean("figures")


def test_a_job_page_says_its_requirements_result_and_ruling_in_words(tab, site, scene):
    """Requirements decoded from their packed word; a refused result is refused, not "ok";
    a ruling is for the client or the provider, not `True`."""
    page = tab.open(f"{site}/jobs/{hexid(scene.jobs['ruled'])}")
    requirements = page.locator("#requirements").inner_text()
    assert requirements == (
        "at least 4 CPU cores; at least 2,048 MB memory; at least 0 GPUs; region 276; "
        "attested or not; 900 compute-seconds"
    ), requirements
    status = page.locator("#result-status").inner_text()
    assert status.startswith("refused: the arbiter ruled for the client"), status
    assert "provider reported ok" in status
    timeline = page.locator("#timeline").inner_text()
    assert "ruled for the client" in timeline and "True" not in timeline, timeline
    page = tab.open(f"{site}/jobs/{hexid(scene.jobs['disputed'])}")
    status = page.locator("#result-status").inner_text()
    assert "disputed by the client" in status, status
    page = tab.open(f"{site}/jobs/{hexid(scene.jobs['paid'])}")
    assert page.locator("#result-status").inner_text() == "ok"
    assert "at least 0 GPUs; any region" in page.locator("#requirements").inner_text()
    page = tab.open(f"{site}/jobs/{hexid(scene.jobs['replicated'])}")
    timeline = page.locator("#timeline").inner_text()
    assert "ruled for the replicas that revealed the result the arbiter found right" in timeline
    tab.clean("job in words")


def test_a_ruling_for_the_provider_upholds_the_result():
    """The other side of a k = 1 ruling, and the words for every requirement field."""
    ruled = {"step": "ruled", "detail": {"for_client": False}}
    job = {
        "result": {"status": 1},
        "terms": {"replicas": 1},
        "steps": [ruled],
        "status": "finalized",
    }
    assert views.result_verdict(job) == "trap, upheld: the arbiter ruled for the provider"
    assert views.ruling_text(True, 3).startswith("for the replicas")
    packed = pack_requirements(
        job_requirements(min_cpu_cores=1, min_gpu_count=1, min_vram_mb=40_960, attested_only=True)
    )
    assert views.requirements_text(str(packed)) == [
        "at least 1 CPU core",
        "at least 1,024 MB memory",
        "at least 1 GPU, 40,960 MB VRAM",
        "any region",
        "attested devices only",
        "600 compute-seconds",
    ]


def test_links_navigate(tab, site, scene):
    page = tab.open(site + "/")
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.wait_for_url(site + "/jobs")
    first = page.locator("#jobs tbody tr th a").first
    job_id = first.inner_text()
    assert re.fullmatch(r"0x[0-9a-f]{64}", job_id)  # full ids
    first.click()
    page.wait_for_url(f"{site}/jobs/{job_id}")
    assert job_id in page.locator("h1").inner_text()
    page = tab.open(f"{site}/jobs/{hexid(scene.jobs['replicated'])}")
    page.locator("#replicas tbody tr").first.locator("td a").nth(1).click()  # the device
    page.wait_for_url(re.compile(r".*/devices#device-0x[0-9a-f]{64}$"))
    page = tab.open(f"{site}/jobs/{hexid(scene.jobs['replicated'])}")
    page.locator("#replicas tbody tr").first.locator("td a").first.click()  # the provider
    page.wait_for_url(re.compile(r".*/pools/0x[0-9a-fA-F]{40}$"))
    assert page.locator("#own-stake data").count() == 1
    page.get_by_role("link", name="Proposals", exact=True).click()
    link = page.locator(f"tr[data-proposal='{hex_id(scene.proposal_id)}'] a")
    # A hashed id shows as the start of its hex form (what the CLI takes as a prefix).
    assert link.inner_text() == hex_id(scene.proposal_id)[:12]
    link.click()
    page.wait_for_url(f"{site}/proposals/{hex_id(scene.proposal_id)}")
    assert hex_id(scene.proposal_id) in page.inner_text("main")
    # a short prefix typed by hand lands on the job's page
    page = tab.open(f"{site}/jobs/{hexid(scene.jobs['paid'])[:12]}")
    assert page.url == f"{site}/jobs/{hexid(scene.jobs['paid'])}"
    tab.clean("navigation")


def test_hostile_event_strings_are_text_and_never_run(tab, site, scene):
    page = tab.open(site + "/devices")
    hostile = page.locator(f"tr[id='device-{hexid(scene.devices['hostile'])}']")
    assert hostile.locator("[data-field=uri]").inner_text() == HOSTILE_URI
    assert "<i>gpu</i>" in hostile.inner_text()
    script = page.locator(f"tr[id='device-{hexid(scene.devices['script'])}']")
    assert script.locator("[data-field=uri]").inner_text() == SCRIPT_URI
    assert page.locator("a[href^='javascript:' i]").count() == 0
    assert page.locator("main img, main i, main b").count() == 0
    tab.shot("hostile-devices")
    tab.clean("devices")
    page = tab.open(f"{site}/proposals/{hex_id(scene.hostile_proposal)}")
    assert page.locator("#description").inner_text() == scene.hostile_proposal.description
    assert page.locator("main b").count() == 0
    assert page.locator("#state").inner_text().strip() in ("Pending", "Active")
    tab.shot("hostile-proposal")
    tab.clean("proposal")
    page = tab.open(site + "/proposals")
    assert page.locator("main b").count() == 0
    tab.clean("proposals")


def test_each_page_shows_its_cli_commands(tab, site, scene):
    open_job = hexid(scene.jobs["open"])
    page = tab.open(f"{site}/jobs/{open_job}")
    commands = page.locator("section.cli pre").inner_text()
    assert f"computeshare client cancel {open_job}" in commands
    assert f"computeshare client status {open_job}" in commands
    page = tab.open(f"{site}/proposals/{hex_id(scene.hostile_proposal)}")
    assert f"computeshare gov vote {hex_id(scene.hostile_proposal)} for" in page.inner_text("main")
    provider = scene.providers[0].address
    page = tab.open(f"{site}/pools/{provider}")
    assert f"computeshare delegator delegate {provider} <amount>" in page.inner_text("main")
    tab.clean("commands")


class Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if attrs.get("id"):
            self.ids.add(attrs["id"])


def test_the_job_list_pages(tab, site, scene, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    page = tab.open(site + "/jobs")
    assert page.locator("#jobs tbody tr").count() == 2
    page.get_by_role("link", name="Older →").click()
    page.wait_for_url(site + "/jobs?page=2")
    page.get_by_role("link", name="Older →").click()
    page.wait_for_url(site + "/jobs?page=3")
    assert page.locator("#jobs tbody tr").count() == len(scene.jobs) - 4
    # paid, replicated and ruled: two on the first page, one on the second
    page.get_by_role("link", name="finalized (3)").click()
    page.wait_for_url(site + "/jobs?status=finalized")
    assert page.locator("#jobs tbody tr").count() == 2
    page.get_by_role("link", name="Older →").click()
    page.wait_for_url(site + "/jobs?status=finalized&page=2")
    assert page.locator("#jobs tbody tr").count() == 1
    assert page.get_by_role("link", name="Older →").count() == 0
    tab.clean("paging")


def test_write_static_opens_from_disk(tab, index, scene, tmp_path, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)  # pages of the list are files too
    out = tmp_path / "report"
    written = write_static(index, out)
    expected = ["index.html", "devices.html", "jobs.html", "jobs-open.html", "pools.html"]
    expected += ["jobs-page-2.html", "jobs-page-3.html", "jobs-finalized.html"]
    expected += [f"jobs/{hexid(j)}.html" for j in scene.jobs.values()]
    expected += [f"pools/{p['provider']}.html" for p in index.pools()]
    expected += [f"proposals/{hex_id(scene.proposal_id)}.html", "proposals.html"]
    for name in expected:
        assert (out / name).is_file(), name
    parsed = {}
    for path in written:
        parsed[path] = Anchors()
        parsed[path].feed(path.read_text(encoding="utf-8"))
    checked = 0
    for path, links in parsed.items():
        for href in links.hrefs:
            if urlsplit(href).scheme in ("http", "https"):  # a device's metadata URI
                continue
            assert not urlsplit(href).scheme and not href.startswith("/"), (path, href)
            target, fragment = urldefrag(href)
            resolved = (path.parent / target).resolve() if target else path
            assert resolved.is_file(), (path, href)
            if fragment:
                assert fragment in parsed[resolved].ids, (path, href)
            checked += 1
    assert checked > 100
    page = tab.open((out / "index.html").as_uri())
    assert wei(page, "#treasury-balance") == scene.cs.token.balanceOf(scene.cs.timelock)
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.wait_for_url((out / "jobs.html").as_uri())
    page.locator("#jobs tbody tr th a").first.click()
    page.wait_for_url(re.compile(r".*/jobs/0x[0-9a-f]{64}\.html$"))
    assert page.locator("#job-status").count() == 1
    tab.shot("static-job")
    tab.clean("static snapshot")


def test_amounts_times_and_links_are_formatted_safely():
    assert tokens(5_000 * 10**18) == "5,000"
    assert tokens(19_500_000_000_000_000_000) == "19.5"
    assert tokens(60_000_000 * 10**18) == "60,000,000"
    assert tokens(1) == "<0.0001" and tokens(0) == "0"
    assert (
        str(amount(10**18))
        == '<data value="1000000000000000000" title="1000000000000000000 wei">1</data>'
    )
    assert [percent(b) for b in (0, 250, 1000, 10_000, 1)] == [
        "0 %",
        "2.5 %",
        "10 %",
        "100 %",
        "0.01 %",
    ]
    assert str(utc(0)) == "&ndash;"
    assert "2026-12-03 14:02:05 UTC" in str(utc(1796306525))
    assert web_link("https://agent.example/x") == "https://agent.example/x"
    site, disk = Links(), Links(static=True, depth=1)
    assert site("jobs", status="open", page=2) == "/jobs?status=open&page=2"
    assert site("jobs", status=None, page=1) == "/jobs"
    assert disk("jobs", status="open", page=2) == "../jobs-open-page-2.html"
    assert disk("job", "0xab") == "../jobs/0xab.html" and disk("overview") == "../index.html"
    for hostile in (SCRIPT_URI, " javascript:x", "data:text/html,<b>", "http://", "http://a b"):
        assert web_link(hostile) is None, hostile


def test_the_follower_syncs_until_stopped_and_outlives_a_failing_node():
    calls = []

    class Flaky:
        def sync(self):
            calls.append(time.monotonic())
            if len(calls) == 1:
                raise IndexFailure("the node did not answer: connection refused")

    stop = threading.Event()
    worker = threading.Thread(target=_follow, args=(Flaky(), 0.01, stop))
    worker.start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    worker.join(timeout=5)
    assert len(calls) >= 3 and not worker.is_alive()

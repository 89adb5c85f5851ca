"""Sends without ape: `token transfer`, `token delegate` and `gov vote` by URI over plain
JSON-RPC (computeshare.sender), against the same commands through ape
(COMPUTESHARE_THROUGH_APE=1) on the same node.

Both ways must move the same tokens and votes, print the same lines and JSON, and fail with
the same one line (a revert, an unknown account, a wrong passphrase); the process must never
import ape; a node that answers nonsense on the send path gets one line."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from click.testing import CliRunner
from eth_account import Account

from computeshare.accounts import load_account
from computeshare.cli import main
from computeshare.client import ComputeShare
from computeshare.constants import TOKEN
from computeshare.governance import advance
from tests.helpers import one_line_error
from tests.test_reads import probe

ZERO = "0x" + "00" * 20


@pytest.fixture
def both(deployed_manifest, chain):
    """The CLI in this process, without ape (`plain=True`) or through ape, on the test node:
    (exit code, output) with stderr apart."""
    runner = CliRunner()

    def invoke(*args, plain: bool, account: str | None = None, env=None, input=None):
        extra = ["--manifest", str(deployed_manifest), "--network", chain.provider.uri]
        if account is not None:
            extra += ["--account", account]
        env = {"COMPUTESHARE_THROUGH_APE": "0" if plain else "1", **(env or {})}
        return runner.invoke(main, [*args, *extra], env=env, input=input)

    return invoke


@pytest.fixture
def cs(deployed_manifest):
    return ComputeShare.from_manifest(deployed_manifest)


def test_test_accounts_are_apes():
    """TEST::n is derived from ape-config.yaml's mnemonic and HD path as ape derives it."""
    import ape

    test_accounts = ape.accounts.test_accounts
    for index in (0, 1, 4, 12, 19):
        assert load_account(f"TEST::{index}").address == test_accounts[index].address


def test_a_send_by_uri_never_loads_ape(deployed_manifest, chain, accounts, cs):
    where = ("--network", chain.provider.uri, "--manifest", str(deployed_manifest))
    before = cs.token.balanceOf(accounts[9])
    code, out, seen = probe("token", "transfer", str(accounts[9]), "3", *where, "--account",
                            "TEST::4")  # fmt: skip
    assert code == 0, out
    assert out.splitlines()[0] == f"sent 3 tokens to {accounts[9].address}"
    assert seen["heavy"] == [], seen
    assert cs.token.balanceOf(accounts[9]) == before + 3 * TOKEN
    code, out, seen = probe("token", "delegate", "--json", *where,
                            env={"COMPUTESHARE_ACCOUNT": "TEST::10"})  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["delegate"] == accounts[10].address and seen["heavy"] == []
    assert cs.token.delegates(accounts[10]) == accounts[10].address


def test_transfers_and_delegations_are_the_same_both_ways(both, accounts, cs):
    to = accounts[9].address
    for plain in (True, False):
        result = both("token", "transfer", to, "1.5", plain=plain, account="TEST::4")
        assert result.exit_code == 0, result.output
        left = 100_000 - 1.5 * (1 if plain else 2)
        assert result.output == f"sent 1.5 tokens to {to}\nyour balance: {left:,g} tokens\n"
    assert cs.token.balanceOf(accounts[4]) == 99_997 * TOKEN
    assert cs.token.balanceOf(accounts[9]) == 3 * TOKEN
    records = []
    for plain, index in ((True, 10), (False, 12)):
        result = both("token", "delegate", "--json", plain=plain, account=f"TEST::{index}")
        assert result.exit_code == 0, result.output
        record = json.loads(result.output)
        me = accounts[index].address
        assert record == {"balance": str(100_000 * TOKEN), "delegate": me,
                          "votes": str(100_000 * TOKEN)}  # fmt: skip
        assert cs.token.getVotes(me) == 100_000 * TOKEN
        records.append(record)
        again = both("token", "delegate", plain=plain, account=f"TEST::{index}")
        one_line_error(again, f"your votes already go to {me}")
    result = both("token", "transfer", to, "1", "--json", plain=True, account="TEST::12")
    assert json.loads(result.output) == {
        "balance": str(99_999 * TOKEN), "sent": str(TOKEN), "to": to
    }  # fmt: skip


def test_errors_are_the_same_one_line_both_ways(both, accounts):
    cases = [
        (("token", "transfer", ZERO, "1"), "TEST::4",
         "Error: reverted: compute_token: transfer to the zero address"),
        (("token", "transfer", str(accounts[9]), "1"), "nobody-here",
         "Error: Invalid value for '--account': Account with alias 'nobody-here' not found."),
        (("token", "delegate"), "TEST::99", "Error: Invalid value for '--account': Index '99'"),
        (("token", "transfer", str(accounts[9]), "1"), "TEST::7", "Error: balance is 0 tokens"),
        (("token", "delegate"), None, "Error: give --account ALIAS"),
    ]  # fmt: skip
    for args, account, expected in cases:
        for plain in (True, False):
            result = both(*args, plain=plain, account=account)
            one_line_error(result, expected)
            assert result.output.startswith(expected), (plain, result.output)


@pytest.fixture
def keystore(tmp_path, monkeypatch, accounts):
    """An account of ape's keystore, in a data folder of its own (ape in this process and
    the path without ape both read it): TEST::4's key, encrypted with "right horse"."""
    import ape

    folder = tmp_path / "ape-data"
    (folder / "accounts").mkdir(parents=True)
    alias = f"holder-{tmp_path.name[-12:].replace('-', '')}"
    key = load_account("TEST::4").load_key()
    keyfile = Account.encrypt(key, "right horse", kdf="pbkdf2", iterations=1_000)
    (folder / "accounts" / f"{alias}.json").write_text(json.dumps(keyfile))
    # ape's keystore container keeps its folder (a cached property): pointed here for the test
    container = ape.accounts.containers["accounts"]
    monkeypatch.setitem(container.__dict__, "data_folder", folder / "accounts")
    monkeypatch.setenv("APE_DATA_FOLDER", str(folder))
    return alias


def test_an_account_of_apes_keystore_signs_both_ways(both, keystore, accounts, cs):
    variable = f"APE_ACCOUNTS_{keystore}_PASSPHRASE"
    to = accounts[9].address
    for plain in (True, False):
        wrong = both("token", "transfer", to, "1", plain=plain, account=keystore,
                     env={variable: "wrong horse"})  # fmt: skip
        one_line_error(wrong, "Invalid password")
        assert wrong.output == "Error: Invalid password\n", wrong.output
        right = both("token", "transfer", to, "1", plain=plain, account=keystore,
                     env={variable: "right horse"})  # fmt: skip
        assert right.exit_code == 0, right.output
        assert right.output.startswith(f"sent 1 tokens to {to}\n"), right.output
    assert cs.token.balanceOf(accounts[4]) == 99_998 * TOKEN
    # Without the variable: a hidden prompt (on stderr), then the same send.
    prompted = both("token", "transfer", to, "1", plain=True, account=keystore,
                    input="right horse\n")  # fmt: skip
    assert prompted.exit_code == 0, prompted.output
    assert f"Enter passphrase to unlock '{keystore}'" in prompted.output
    assert "right horse" not in prompted.output
    assert cs.token.balanceOf(accounts[9]) == 3 * TOKEN
    prompted = both("token", "delegate", plain=True, account=keystore, input="nope\n")
    assert prompted.exit_code == 1 and prompted.output.endswith("Error: Invalid password\n")


def test_a_vote_is_the_same_both_ways(both, accounts, cs, chain, deployed_manifest):
    for index in (0, 12):
        assert both("token", "delegate", plain=True, account=f"TEST::{index}").exit_code == 0
    advance(chain, 1)
    propose = ("gov", "propose", "--set", "JobEscrow.PROTOCOL_FEE_BPS=100", "--description")
    result = both(*propose, "both ways", plain=False, account="TEST::0")
    assert result.exit_code == 0, result.output
    proposal = result.output.split()[-1]
    prefix = proposal[2:12]
    one_line_error(both("gov", "vote", prefix, "for", plain=True, account="TEST::12"),
                   "is Pending, not Active")  # fmt: skip
    advance(chain, cs.governor.votingDelay() + 1)
    weights = {}
    for plain, index, support in ((True, 12, "against"), (False, 0, "for")):
        weight = cs.token.getVotes(accounts[index])
        result = both("gov", "vote", prefix, support, "--json", plain=plain,
                      account=f"TEST::{index}")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == {
            "proposal": proposal, "support": support, "weight": str(weight)
        }  # fmt: skip
        weights[support] = weight
        for again in (True, False):
            one_line_error(both("gov", "vote", prefix, "for", plain=again,
                                account=f"TEST::{index}"), "already voted")  # fmt: skip
    against, for_, abstain = cs.governor.proposalVotes(int(proposal, 16))
    assert (against, for_, abstain) == (weights["against"], weights["for"], 0)
    # A vote with a reason (castVoteWithReason), in a process of its own: no ape loaded.
    where = ("--network", chain.provider.uri, "--manifest", str(deployed_manifest))
    code, out, seen = probe("gov", "vote", prefix, "abstain", "--reason", "why not", *where,
                            "--account", "TEST::4")  # fmt: skip
    assert code == 0, out
    assert out == f"voted abstain on {proposal} with 0 votes\n", out
    assert seen["heavy"] == [], seen
    assert cs.governor.hasVoted(int(proposal, 16), accounts[4])


class Proxy(BaseHTTPRequestHandler):
    """The test node behind a proxy that answers some methods wrongly (`wrong`)."""

    upstream: ClassVar[str] = ""
    wrong: ClassVar[dict] = {}  # method -> its answer, or what makes it of the node's

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = json.loads(body)
        method = message.get("method") if isinstance(message, dict) else None
        wrong = self.wrong.get(method)
        if isinstance(wrong, bytes):
            answer = wrong
        else:
            request = urllib.request.Request(
                self.upstream, data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as upstream:
                answer = upstream.read()
            if wrong is not None:
                answer = wrong(answer)
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy(chain):
    Proxy.upstream, Proxy.wrong = chain.provider.uri, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _result(value) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": value}).encode()


def _error(message: str) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": message}}
    ).encode()


def _failed(answer: bytes) -> bytes:
    """A receipt as a failed transaction's."""
    message = json.loads(answer)
    if message.get("result"):
        message["result"]["status"] = "0x0"
    return json.dumps(message).encode()


def _no_base_fee(answer: bytes) -> bytes:
    """A block as a chain's without EIP-1559."""
    message = json.loads(answer)
    if isinstance(message.get("result"), dict):
        message["result"].pop("baseFeePerGas", None)
    return json.dumps(message).encode()


def test_a_node_answering_nonsense_to_a_send_gets_one_line(proxy, deployed_manifest, accounts):
    runner = CliRunner()
    where = ["--network", proxy, "--manifest", str(deployed_manifest), "--account", "TEST::4"]
    cases = [
        ({"eth_estimateGas": _result("plenty")}, "eth_estimateGas: the node answered 'plenty'"),
        ({"eth_getTransactionCount": b"[]"}, "not an object"),
        ({"eth_getBlockByNumber": _result(None)}, "the node has no latest block"),
        ({"eth_maxPriorityFeePerGas": _result(12)}, "eth_maxPriorityFeePerGas: the node answ"),
        (
            {"eth_maxPriorityFeePerGas": _result(hex(2 * 10**12))},
            "gwei per gas, over COMPUTESHARE_MAX_FEE_GWEI (1,000.00): set it higher to pay",
        ),
        ({"eth_sendRawTransaction": _result("0x" + "ab" * 32)}, "not the transaction's hash"),
        ({"eth_getTransactionReceipt": _result("mined!")}, "the node answered no receipt"),
        ({"eth_getTransactionReceipt": _result(None)}, "was sent but not mined within 0.3 s"),
        ({"eth_call": _result("0x1234")}, "ComputeToken.balanceOf: the node's answer (2 bytes)"),
        ({"eth_sendRawTransaction": b"<html>busy</html>"}, "did not answer JSON"),
        ({"eth_getTransactionReceipt": _failed}, "failed on chain (block "),
    ]
    env = {"COMPUTESHARE_RECEIPT_TIMEOUT": "0.3"}
    for wrong, expected in cases:
        Proxy.wrong = wrong
        result = runner.invoke(main, ["token", "transfer", str(accounts[9]), "1", *where], env=env)
        one_line_error(result, expected)
        assert result.exit_code == 1, (wrong, result.output)
    # A node without eth_maxPriorityFeePerGas: the priority fee is what its gas price adds.
    Proxy.wrong = {"eth_maxPriorityFeePerGas": _error("the method does not exist")}
    result = runner.invoke(main, ["token", "transfer", str(accounts[9]), "1", *where])
    assert result.exit_code == 0 and result.output.startswith("sent 1 tokens"), result.output


def test_a_chain_without_a_base_fee_gets_a_legacy_transaction(proxy, deployed_manifest, accounts,
                                                             chain):  # fmt: skip
    Proxy.wrong = {"eth_getBlockByNumber": _no_base_fee}
    where = ["--network", proxy, "--manifest", str(deployed_manifest), "--account", "TEST::4"]
    result = CliRunner().invoke(main, ["token", "transfer", str(accounts[9]), "1", *where])
    assert result.exit_code == 0 and result.output.startswith("sent 1 tokens"), result.output
    block = chain.provider.web3.eth.get_block("latest", full_transactions=True)
    [sent] = block["transactions"]
    assert sent["type"] == 0 and sent["from"] == accounts[4].address


def test_a_send_to_a_node_that_is_not_there_is_ape_paths_one_line(deployed_manifest, accounts):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        uri = f"http://127.0.0.1:{held.getsockname()[1]}"
        result = CliRunner().invoke(
            main,
            ["token", "transfer", str(accounts[9]), "1", "--network", uri, "--manifest",
             str(deployed_manifest), "--account", "TEST::4"],
        )  # fmt: skip
    one_line_error(result, f"Error: no node answers at {uri} (waited up to ")


def test_the_roles_send_by_uri_without_ape(deployed_manifest, chain, accounts, cs):
    """A provider stakes and registers a device, a client posts a job and cancels it, a
    delegator delegates: each command in a process of its own by URI, none loading ape or
    web3, with the same checks (`ComputeShare` over `PlainChain`)."""
    where = ("--network", chain.provider.uri, "--manifest", str(deployed_manifest))

    def run(*args, account: int) -> str:
        code, out, seen = probe(*args, *where, "--account", f"TEST::{account}")
        assert code == 0, out
        assert seen["heavy"] == [], (args, seen)
        return out

    run("provider", "stake", "5000", account=4)
    device = run("provider", "register", "--uri", "http://device.example", account=4).split()[-1]
    assert cs.registry.device(bytes.fromhex(device[2:])).owner == accounts[4].address
    posted = run("client", "post", *POST, account=10)
    job = bytes.fromhex(posted.splitlines()[-1].split()[-1][2:])
    assert cs.jobs.terms(job).client == accounts[10].address
    # By its full id: a prefix is looked up in the event index, whose sync reads the pools'
    # views through web3 when it meets staking events (tests/test_reads.py).
    assert "refunded 2 tokens" in run("client", "cancel", "0x" + job.hex(), account=10)
    run("delegator", "delegate", accounts[4].address, "1000", account=12)
    assert cs.staking.delegation(accounts[4], accounts[12]).warming == 1_000 * TOKEN


POST = ("--workload", "sha256-chain", "--input", '{"seed": "a", "rounds": 9}', "--price", "2")


def test_posts_refusals_and_return_values_are_the_same_both_ways(both, cs, accounts, chain):
    """`client post` (its approval, deposit and job), its refusals before anything is sent,
    and a delegator's `cancel-warmup`, whose amount comes from its event: the same lines
    either way."""
    assert both("provider", "stake", "5000", plain=True, account="TEST::4").exit_code == 0
    provider, posts, cancels = accounts[4].address, [], []
    for plain, index in ((True, 10), (False, 12)):
        me = f"TEST::{index}"
        nonce = accounts[index].nonce
        refused = both("client", "post", *POST, "--min-gpus", "200", plain=plain, account=me)
        one_line_error(refused, "no device can satisfy the job: min_gpu_count 200 is over")
        refused = both("client", "post", *POST, "--duration", "10", plain=plain, account=me)
        one_line_error(refused, "a job needs a duration of at least 60 s")
        assert accounts[index].nonce == nonce, "refused before sending"
        posted = both("client", "post", *POST, plain=plain, account=me)
        assert posted.exit_code == 0, posted.output
        job = posted.output.splitlines()[-1].split()[-1]
        one_line_error(both("client", "dispute", job, plain=plain, account=me),
                       "has no result to dispute yet")  # fmt: skip
        # The deadline is a time on the chain's clock, which ticks between the two.
        posts.append(re.sub(r"deadline .*", "deadline", posted.output.replace(job, "JOB")))
        delegated = both("delegator", "delegate", provider, "1000", plain=plain, account=me)
        assert delegated.exit_code == 0, delegated.output
        cancelled = both("delegator", "cancel-warmup", provider, plain=plain, account=me)
        assert cancelled.exit_code == 0, cancelled.output
        # The thaw ends on the chain's clock too, which may cross a minute between the two.
        cancels.append(re.sub(r"withdrawable .*", "withdrawable", cancelled.output))
    assert posts[0] == posts[1], posts
    assert posts[0].startswith("approving JobEscrow to spend 2 tokens\n"), posts[0]
    assert cancels[0] == cancels[1] and cancels[0].startswith("thawing 1,000 tokens"), cancels


def test_a_plain_receipt_answers_like_apes(deployed_manifest, chain, accounts):
    """A send over `PlainChain` answers a receipt read as ape's: its return value from the
    node's call trace, its events decoded from its raw logs."""
    from computeshare.onchain import receipt_events
    from computeshare.reader import JsonRpc
    from computeshare.sender import PlainChain, Transactor

    plain = PlainChain(Transactor(JsonRpc(chain.provider.uri), chain.chain_id))
    cs = ComputeShare.from_manifest(deployed_manifest, load_account("TEST::4"), chain=plain)
    receipt = cs.token.transfer(accounts[9], 5, sender=cs.account)
    assert receipt.return_value is True
    ape_receipt = ComputeShare.from_manifest(deployed_manifest).token.transfer(
        accounts[9], 5, sender=accounts[4]
    )
    assert ape_receipt.return_value is True
    for answer in (receipt, ape_receipt):
        [event] = receipt_events(answer, cs.token, "Transfer")
        assert (event["sender"], event["receiver"], event["value"]) == (
            accounts[4].address, accounts[9].address, 5
        )  # fmt: skip
    assert receipt.block_number == ape_receipt.block_number - 1
    assert plain.now() >= chain.blocks.head.timestamp


def _receipt_logs(logs) -> callable:
    """A receipt whose logs are `logs`."""

    def wrong(answer: bytes) -> bytes:
        message = json.loads(answer)
        if isinstance(message.get("result"), dict):
            message["result"]["logs"] = logs
        return json.dumps(message).encode()

    return wrong


def test_a_node_answering_nonsense_logs_gets_one_line(proxy, deployed_manifest, accounts, cs):
    """What a role command reads from logs (a posted job's id from its receipt, a job's
    terms from eth_getLogs) is checked as every other answer: one line, never a traceback."""
    from computeshare.onchain import event_entry, event_topic

    runner = CliRunner()
    where = ["--network", proxy, "--manifest", str(deployed_manifest), "--account", "TEST::10"]
    post = ["client", "post", *POST, *where]
    topic = "0x" + "ab" * 32
    cases = [
        ({"eth_getTransactionReceipt": _receipt_logs([5])}, "the receipt: the node answered '5'"),
        ({"eth_getTransactionReceipt": _receipt_logs([{"address": ZERO, "topics": ["0x12"]}])},
         "topics are not 32-byte hex"),
        ({"eth_getTransactionReceipt": _receipt_logs([])}, "emitted no JobPosted event"),
    ]  # fmt: skip
    for wrong, expected in cases:
        Proxy.wrong = wrong
        result = runner.invoke(main, post)  # its steps said, then the error: one line
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert result.output.splitlines()[-1].startswith("Error: "), result.output
        assert expected in result.output.splitlines()[-1], result.output
    Proxy.wrong = {}
    posted = runner.invoke(main, post)
    assert posted.exit_code == 0, posted.output
    job = posted.output.splitlines()[-1].split()[-1]
    escrow = cs.escrow.address
    posted_topic = event_topic(event_entry(cs.escrow, "JobPosted"))
    for logs, expected in (
        ({"not": "a list"}, "not logs"),
        ([{"address": escrow, "topics": [topic, topic]}], "a log the query does not ask for"),
        ([{"address": escrow, "topics": [], "data": "0x"}], "not a log"),
        # A node ignoring the filter: another job's JobPosted, or another contract's.
        ([{"address": escrow, "topics": [posted_topic, topic, topic], "data": "0x"}],
         "a log the query does not ask for"),
        ([{"address": ZERO, "topics": [posted_topic, job, topic], "data": "0x"}],
         "a log the query does not ask for"),
    ):  # fmt: skip
        Proxy.wrong = {"eth_getLogs": _result(logs)}
        one_line_error(runner.invoke(main, ["client", "cancel", job, *where]), expected)
    Proxy.wrong = {}
    assert "refunded 2 tokens" in runner.invoke(main, ["client", "cancel", job, *where]).output


def _with_an_anonymous_log(answer: bytes) -> bytes:
    """A receipt with an anonymous log (LOG0: no topics) before its own logs."""
    message = json.loads(answer)
    receipt = message.get("result")
    if isinstance(receipt, dict) and receipt.get("logs"):
        first = receipt["logs"][0]
        receipt["logs"] = [{**first, "topics": [], "data": "0x"}, *receipt["logs"]]
    return json.dumps(message).encode()


def test_an_anonymous_log_in_a_receipt_is_no_ones_event(proxy, deployed_manifest):
    """A contract the transaction calls (a payment token: any ERC20) may emit an anonymous
    log, one without topics. It is nobody's event here: the post it rode in was mined and
    is answered as posted, not refused after the fact as a node's nonsense (which would
    invite posting twice)."""
    Proxy.wrong = {"eth_getTransactionReceipt": _with_an_anonymous_log}
    where = ["--network", proxy, "--manifest", str(deployed_manifest), "--account", "TEST::10"]
    result = CliRunner().invoke(main, ["client", "post", *POST, *where])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"job 0x[0-9a-f]{64}", result.output.splitlines()[-1]), result.output


def test_values_a_type_cannot_hold_and_odd_accounts_are_one_line(both, accounts):
    """A value its ABI type cannot hold (a device's memory_mb is a uint32) is refused
    before sending, either way; an account index in another script's digits too."""
    assert both("provider", "stake", "5000", plain=True, account="TEST::4").exit_code == 0
    nonce = accounts[4].nonce
    for plain in (True, False):
        result = both("provider", "register", "--memory-mb", str(2**33), plain=plain,
                      account="TEST::4")  # fmt: skip
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert accounts[4].nonce == nonce, "refused before sending"
    one_line_error(both("token", "delegate", plain=True, account="TEST::\u00b2"),
                   "Cannot reference test account by 'TEST::\u00b2'")  # fmt: skip


def test_the_path_through_ape_caps_the_fee_the_node_sets_too(
    deployed_manifest, accounts, chain, monkeypatch
):
    """ape takes a transaction's fees from the node as the plain path does: a node asking
    more than COMPUTESHARE_MAX_FEE_GWEI is refused there too, before anything is signed,
    for the library's sends, the CLI's and the agent's (`onchain.send`). Here the node asks
    a priority fee of 1 gwei against a cap of 0.5 (the test node's fees are not changed:
    its base fee outlives the chain snapshots that isolate each test)."""
    from computeshare.exceptions import ComputeShareError
    from computeshare.sender import SendError

    cs = ComputeShare.from_manifest(deployed_manifest, accounts[4])
    monkeypatch.setenv("COMPUTESHARE_MAX_FEE_GWEI", "0.5")
    assert chain.provider.priority_fee == 10**9
    nonce = accounts[4].nonce
    with pytest.raises((SendError, ComputeShareError), match=r"gwei per gas, over COMPUTESHARE"):
        cs.deposit(5 * TOKEN)
    from computeshare.onchain import send

    with pytest.raises(
        SendError, match=r"up to 1.00 gwei per gas, over COMPUTESHARE_MAX_FEE_GWEI \(0.50\)"
    ):
        send(cs.token.transfer, accounts[9], 1, sender=accounts[4])
    assert accounts[4].nonce == nonce, "nothing signed"
    monkeypatch.setenv("COMPUTESHARE_MAX_FEE_GWEI", "1000")
    before = cs.token.balanceOf(accounts[9])
    receipt = send(cs.token.transfer, accounts[9], 1, sender=accounts[4])
    assert receipt.status == 1 and cs.token.balanceOf(accounts[9]) == before + 1
    assert receipt.max_fee <= 1000 * 10**9

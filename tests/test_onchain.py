"""What the SDK reads from logs, decoded here from raw logs for ape's contracts and plain
ones alike (computeshare.onchain): events with indexed dynamic arguments, structs."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from computeshare.onchain import Struct, decode_log, event_topic
from computeshare.reader import NodeError

NOTE = {
    "type": "event",
    "name": "Noted",
    "inputs": [
        {"name": "who", "type": "address", "indexed": True},
        {"name": "label", "type": "string", "indexed": True},
        {"name": "point", "type": "tuple", "indexed": False, "components": [
            {"name": "x", "type": "uint256"}, {"name": "owner", "type": "address"},
        ]},
    ],
}  # fmt: skip
WHO = "0x" + "ab" * 20


def raw_log(topics: list[bytes], data: bytes) -> dict:
    return {
        "address": "0x" + "11" * 20,
        "topics": ["0x" + t.hex() for t in topics],
        "data": "0x" + data.hex(),
        "blockNumber": "0x7",
        "logIndex": "0x0",
        "transactionHash": "0x" + "22" * 32,
    }


def test_an_indexed_string_is_its_hash_and_a_struct_reads_by_name_and_position():
    assert event_topic(NOTE) == "0x" + keccak(text="Noted(address,string,(uint256,address))").hex()
    topics = [bytes.fromhex(event_topic(NOTE)[2:]), bytes(12) + bytes.fromhex(WHO[2:]),
              keccak(text="hello")]  # fmt: skip
    log = decode_log(NOTE, raw_log(topics, encode(["(uint256,address)"], [(5, WHO)])))
    assert log.event_name == "Noted" and log.block_number == 7
    assert log.label == keccak(text="hello")  # an indexed string is logged as its hash
    assert log.who == to_checksum_address(WHO)
    point = log.point
    assert isinstance(point, Struct) and point.x == 5 and point[0] == 5
    assert point == (5, to_checksum_address(WHO)) and point["owner"] == point[1]
    with pytest.raises(NodeError, match="does not decode as Noted"):
        decode_log(NOTE, raw_log(topics[:2], b""))

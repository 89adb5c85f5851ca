"""Accounts without ape: what ape's `--account` takes, signing with eth-account.

`load_account` takes an alias of ape's keystore, `<data folder>/accounts/<alias>.json`
(eth-account's encrypted JSON; the data folder is $APE_DATA_FOLDER or ~/.ape), unlocked by
`APE_ACCOUNTS_<alias>_PASSPHRASE` as ape's `unlock` reads it, else by a hidden prompt; or
`TEST::n`, ape's n-th test account, derived from the mnemonic and HD path under `test:` in
ape-config.yaml (ape's defaults otherwise). A name that is neither gets ape's own words
(`UnknownAccount`). `computeshare.sender` signs transactions with these.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from computeshare.reader import ReadError

DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"  # ape's
DEFAULT_HD_PATH = "m/44'/60'/0'/0"
DEFAULT_TEST_ACCOUNTS = 10


class AccountError(ReadError):
    """An account that cannot sign (a wrong passphrase, an unreadable key file)."""


class UnknownAccount(LookupError):
    """`--account` names no account: the message is ape's for the same name."""


def data_folder() -> Path:
    """ape's data folder: $APE_DATA_FOLDER, or ~/.ape."""
    found = os.environ.get("APE_DATA_FOLDER")
    return Path(found) if found else Path.home() / ".ape"


def ape_test_config(config: Path | None = None) -> tuple[str, str, int]:
    """(mnemonic, HD path, number of accounts) of ape's test accounts: ape-config.yaml's
    `test:` section, else ape's defaults."""
    import yaml

    config = config or Path("ape-config.yaml")
    section: Any = {}
    if config.is_file():
        try:
            section = (yaml.safe_load(config.read_text()) or {}).get("test") or {}
        except (yaml.YAMLError, AttributeError):
            section = {}
    if not isinstance(section, dict):
        section = {}
    return (
        str(section.get("mnemonic") or DEFAULT_MNEMONIC),
        str(section.get("hd_path") or DEFAULT_HD_PATH),
        int(section.get("number_of_accounts") or DEFAULT_TEST_ACCOUNTS),
    )


class Signer:
    """An account that signs here: its `address`, and its key once `load_key` ran."""

    alias: str
    address: str
    _key: bytes | None = None

    def __str__(self) -> str:
        return self.address

    def load_key(self) -> bytes:
        raise NotImplementedError

    def sign_message(self, signable) -> Signature:
        """An EIP-191 or EIP-712 message (eth-account's `SignableMessage`) signed, as ape's
        `sign_message` answers."""
        from eth_account import Account

        return Signature(bytes(Account.sign_message(signable, self.load_key()).signature))

    def sign(self, transaction: dict) -> tuple[bytes, str]:
        """(the signed transaction's bytes, its hash as 0x-hex)."""
        from eth_account import Account

        signed = Account.sign_transaction(transaction, self.load_key())
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()


class Signature:
    """A signature as r, s and v (27 or 28): `encode_rsv` gives its 65 bytes, as ape's."""

    def __init__(self, rsv: bytes):
        self.rsv = rsv

    def encode_rsv(self) -> bytes:
        return self.rsv


class MnemonicSigner(Signer):
    """ape's test account `TEST::n`, derived as ape derives it (`generate_dev_accounts`)."""

    def __init__(self, index: int, mnemonic: str, hd_path: str):
        from eth_account import Account
        from eth_account.hdaccount import HDPath
        from eth_account.hdaccount.mnemonic import Mnemonic

        path = hd_path if "{}" in hd_path or "{0}" in hd_path else f"{hd_path.rstrip('/')}/{{}}"
        self.alias = f"TEST::{index}"
        self._key = HDPath(path.format(index)).derive(Mnemonic.to_seed(mnemonic))
        self.address = Account.from_key(self._key).address

    def load_key(self) -> bytes:
        assert self._key is not None
        return self._key


class KeyfileSigner(Signer):
    """An account of ape's keystore: its key file is decrypted when it first signs, with
    `APE_ACCOUNTS_<alias>_PASSPHRASE` if set (as ape's `unlock`), else a hidden prompt."""

    def __init__(self, path: Path):
        from eth_utils import is_hex_address, to_checksum_address

        self.alias, self.path = path.stem, path
        try:
            self.keyfile = json.loads(path.read_text())
            address = "0x" + str(self.keyfile["address"]).removeprefix("0x")
        except (OSError, ValueError, KeyError, TypeError):
            raise AccountError(f"{path} is not an account's key file") from None
        if not is_hex_address(address):
            raise AccountError(f"{path} is not an account's key file")
        self.address = to_checksum_address(address)

    def load_key(self) -> bytes:
        if self._key is None:
            from eth_account import Account

            passphrase = os.environ.get(f"APE_ACCOUNTS_{self.alias}_PASSPHRASE")
            if not passphrase:
                import click

                passphrase = click.prompt(
                    f"Enter passphrase to unlock '{self.alias}'",
                    hide_input=True,
                    default="",
                    show_default=False,
                    err=True,
                )
            try:
                key = bytes(Account.decrypt(self.keyfile, passphrase))
            except ValueError:
                raise AccountError("Invalid password") from None  # ape's words
            except (KeyError, TypeError, AttributeError):  # no "crypto" section, or odd types
                raise AccountError(f"{self.path} is not an account's key file") from None
            if Account.from_key(key).address != self.address:
                raise AccountError(f"{self.path}: the key does not match the file's address")
            self._key = key
        return self._key


def load_account(name: str, config: Path | None = None) -> Signer:
    """The account `name` names, as ape's `--account` resolves it (an alias of ape's
    keystore, or TEST::n); `UnknownAccount` with ape's message otherwise."""
    folder = data_folder() / "accounts"

    def keyfile(alias: str) -> Path | None:
        path = folder / f"{alias}.json"
        return path if "/" not in alias and path.is_file() else None

    if name.upper().startswith("TEST::"):
        index = name.upper().replace("TEST::", "")
        if not index.isdecimal():
            if path := keyfile(name):
                return KeyfileSigner(path)
            raise UnknownAccount(f"Cannot reference test account by '{name}'.")
        mnemonic, hd_path, count = ape_test_config(config)
        if 0 <= int(index) < count:
            return MnemonicSigner(int(index), mnemonic, hd_path)
        raise UnknownAccount(f"Index '{index}' is not valid.")
    if name and (path := keyfile(name)):
        return KeyfileSigner(path)
    raise UnknownAccount(f"Account with alias '{name}' not found.")

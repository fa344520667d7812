"""The ledger's public face: open accounts, register and revoke keys, post signed orders.

`Ledger` is safe to share between threads. `post` runs one transaction per call (a batch);
`ledger.poster.Poster` gathers concurrent callers into such batches.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import nacl.exceptions
import nacl.signing
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from ledger import repository as repo
from ledger.authorisations import Endorsement
from ledger.canonical import b64, canonical, unb64
from ledger.chart import SYSTEM_ACCOUNTS, Chart, Kind, kind_of
from ledger.errors import (
    AccountExists,
    BadSignature,
    ExpiryTooFar,
    InvalidOrder,
    KeyExists,
    LedgerError,
    RefusedByDatabase,
    RevokedKey,
    UnknownAccount,
    UnknownKey,
    WrongNode,
    WrongSigner,
)
from ledger.operations import COUNTER, NODE, PLUGIN, TREASURER, operation
from ledger.orders import read_common
from ledger.posting import Batch, Checked, Outcome, Posted, post_batch
from ledger.repository import AccountRef, KeyRef
from ledger.signing import SignedOrder, SigningKey, key_id

log = logging.getLogger(__name__)

# Who may register or revoke a member's key besides the member (recovery in person).
KEY_OFFICERS = frozenset({TREASURER, "role:admin"})
MAX_BATCH_RETRIES = 3
ID_BLOCK = 1024


class Ledger:
    def __init__(
        self,
        engine: Engine,
        *,
        max_amount: int = 1_000_000,
        max_ttl_s: int = 86_400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.max_amount = max_amount
        self.max_ttl_s = max_ttl_s
        self.clock = clock
        with engine.connect().execution_options(sqlite_deferred=True) as conn:
            info = repo.read_meta(conn)
        if "origin" not in info:
            raise RuntimeError("this database holds no ledger yet: run `sou init`")
        self.origin = info["origin"]
        self.chart = Chart(info["currency"])
        self._accounts: dict[str, AccountRef] = {}
        # Balances as this process last committed or read them (PostgreSQL: a batch judged
        # on them saves a round trip; its write checks them under lock).
        self._balances: dict[int, int] | None = {} if engine.dialect.name == "postgresql" else None
        self._spare_ids: list[int] = []
        self._ids_lock = threading.Lock()
        self._keys: dict[str, tuple[KeyRef, nacl.signing.VerifyKey]] = {}

    # -- creation --------------------------------------------------------------------------

    @staticmethod
    def create(
        engine: Engine,
        *,
        origin: str,
        currency: str,
        node_key: SigningKey,
        clock: Callable[[], float] = time.time,
    ) -> Ledger:
        """Start a ledger in an empty (migrated) database: its name, currency, system
        accounts, and the node key registered by itself as the log's first entry."""
        chart = Chart(currency)
        now = int(clock() * 1000)
        with engine.begin() as conn:
            repo.write_meta(conn, {"origin": origin, "currency": chart.local})
            for code in SYSTEM_ACCOUNTS:
                _insert_account(conn, chart, code, now)
            event = key_event(
                "register",
                origin=origin,
                owner=NODE,
                public_key=node_key.public_key,
                signer=node_key,
                now=now,
            )
            _record_key_event(conn, event, node_key.sign_bytes(canonical(event)), now)
        return Ledger(engine, clock=clock)

    # -- accounts --------------------------------------------------------------------------

    def open_account(self, code: str, conn: Connection | None = None) -> None:
        """Open an account, in `conn`'s transaction if given (so that it commits with the
        caller's other writes, such as the member it belongs to)."""
        if conn is None:
            with self.engine.begin() as own:
                return self.open_account(code, own)
        if repo.accounts_by_code(conn, [code], self.chart):
            raise AccountExists(f"account {code!r} already exists", account=code)
        _insert_account(conn, self.chart, code, self._now_ms())

    def ensure_accounts(self, codes: Sequence[str]) -> None:
        """Open those of `codes` that do not exist yet (system accounts added by an upgrade,
        an escrow about to be used)."""
        with self.engine.begin() as conn:
            missing = set(codes) - set(repo.accounts_by_code(conn, codes, self.chart))
            for code in sorted(missing):
                _insert_account(conn, self.chart, code, self._now_ms())

    def account(self, code: str) -> AccountRef:
        if code not in self._accounts:
            with self.reading() as conn:
                self._accounts.update(repo.accounts_by_code(conn, [code], self.chart))
        if code not in self._accounts:
            raise UnknownAccount(f"no account {code!r}", account=code)
        return self._accounts[code]

    def balance(self, code: str) -> int:
        self.account(code)
        with self.reading() as conn:
            return repo.balances(conn, [code])[code]

    def reading(self) -> Connection:
        """A connection for reads: on SQLite its transaction does not take the write lock."""
        return self.engine.connect().execution_options(sqlite_deferred=True)

    # -- keys ------------------------------------------------------------------------------

    def key(self, kid: str) -> KeyRef:
        return self._verify_key(kid)[0]

    def register_key(self, event: dict[str, Any], signature: bytes) -> str:
        """Record a signed `register` key event (see `key_event`); return the new key id."""
        with self.engine.begin() as conn:
            _check_key_event(self, conn, event, signature, "register")
            _record_key_event(conn, event, signature, self._now_ms())
        return str(event["key"])

    def revoke_key(self, event: dict[str, Any], signature: bytes) -> None:
        with self.engine.begin() as conn:
            _check_key_event(self, conn, event, signature, "revoke")
            _record_key_event(conn, event, signature, self._now_ms())

    def _verify_key(
        self, kid: str, conn: Connection | None = None
    ) -> tuple[KeyRef, nacl.signing.VerifyKey]:
        cached = self._keys.get(kid)
        if cached is None:
            if conn is None:
                with self.reading() as own:
                    ref = repo.key_by_id(own, kid)
            else:
                ref = repo.key_by_id(conn, kid)
            if ref is None:
                raise UnknownKey("this key is not registered on this node", key=kid)
            cached = self._keys[kid] = (ref, nacl.signing.VerifyKey(ref.public_key))
        return cached

    # -- orders ----------------------------------------------------------------------------

    def check(self, signed: SignedOrder) -> Checked:
        """Everything about an order that needs no lock: form, node, expiry window, signature,
        signer. Raises the LedgerError that refuses it."""
        order = read_common(signed.order, signed.signature)
        op = operation(order)
        if order["node"] != self.origin:
            raise WrongNode(f"this order is for {order['node']!r}, not this node", node=self.origin)
        if order.expires > self.clock() + self.max_ttl_s:
            raise ExpiryTooFar(
                f"an order may be valid for at most {self.max_ttl_s} s", max_ttl_s=self.max_ttl_s
            )
        key, verifier = self._verify_key(order.key_id)
        try:
            verifier.verify(order.canonical, order.signature)
        except nacl.exceptions.BadSignatureError:
            raise BadSignature(
                "the signature does not match this order and key", key=order.key_id
            ) from None
        if key.owner not in op.signers(order):
            raise WrongSigner(
                f"a key of {key.owner} cannot sign this {order.kind}", key=order.key_id
            )
        if (key.owner == NODE or key.owner.startswith(PLUGIN)) and "rule" not in order.fields:
            raise InvalidOrder("rule", "an order signed by a rule names the rule that made it")
        endorser = None
        if op.endorsement is not None:
            endorser = self.check_endorsement(op.endorsement(order.fields))
        return Checked(order, op, key.owner, endorser)

    def check_endorsement(self, endorsed: Endorsement) -> str:
        """The second signature of an order (a payer's authorisation): by a key of its
        owner, over its bytes, for this node. Its key's revocation is checked at posting."""
        if endorsed.node != self.origin:
            raise WrongNode("this authorisation is for another node", node=self.origin)
        key, verifier = self._verify_key(endorsed.key_id)
        try:
            verifier.verify(endorsed.message, endorsed.signature)
        except nacl.exceptions.BadSignatureError:
            raise BadSignature(
                "the authorisation's signature does not match it", key=endorsed.key_id
            ) from None
        if key.owner != endorsed.owner:
            raise WrongSigner(
                f"a key of {key.owner} cannot authorise for {endorsed.owner}", key=endorsed.key_id
            )
        return endorsed.key_id

    def post(self, signed_orders: Sequence[SignedOrder]) -> list[Outcome]:
        """Check and post orders in one transaction; one outcome (Posted or error) each."""
        outcomes: list[Outcome | None] = []
        checked: list[Checked] = []
        for signed in signed_orders:
            try:
                checked.append(self.check(signed))
                outcomes.append(None)
            except LedgerError as exc:
                outcomes.append(exc)
        posted = iter(self.post_checked(checked))
        return [o if o is not None else next(posted) for o in outcomes]

    def transfer(self, signed: SignedOrder) -> Posted:
        """Post one order; raise its LedgerError if refused."""
        outcome = self.post([signed])[0]
        if isinstance(outcome, LedgerError):
            raise outcome
        return outcome

    def post_checked(self, items: Sequence[Checked]) -> list[Outcome]:
        """Post checked orders in one transaction (see `posting.post_batch`)."""
        if not items:
            return []
        # First optimistic; after a unique key fired (a client id or nonce taken meanwhile)
        # or PostgreSQL broke a deadlock, carefully, looking for them before writing.
        for careful in (False, True):
            try:
                return self._post_once(items, careful=careful)
            except DBAPIError as exc:
                if not _retryable(exc):
                    raise
        # Again: another process took a client id or nonce between our read and our write,
        # or one order breaks a database rule. One by one, each order meets its own fate.
        return [self._post_alone(item) for item in items]

    def _post_alone(self, item: Checked) -> Outcome:
        clashes = breaks = 0
        while True:
            try:
                return self._post_once([item], careful=True)[0]
            except IntegrityError as exc:
                # Once may be a copy of this order committed while we wrote (the next
                # careful look finds it); twice in a row, this order breaks a rule of the
                # schema that Python missed.
                clashes += 1
                if clashes == 2:
                    log.error("the database refused order %s: %s", item.order.client_id, exc.orig)
                    return RefusedByDatabase(
                        "the database refused this transfer; nothing was posted"
                    )
            except DBAPIError as exc:  # a deadlock broken, a serialization failure
                breaks += 1
                if not _retryable(exc) or breaks == MAX_BATCH_RETRIES:
                    raise

    def _post_once(self, items: Sequence[Checked], *, careful: bool) -> list[Outcome]:
        try:
            return self._post_batch(items, careful=careful)
        except repo.StaleBalances:
            # Another writer (a process, a thread) moved a balance this process knew, or
            # revoked a signer's key: nothing was written; judge again on locked rows.
            if self._balances is not None:
                self._balances.clear()
            return self._post_batch(items, careful=careful, lock_first=True)

    def _post_batch(
        self, items: Sequence[Checked], *, careful: bool, lock_first: bool = False
    ) -> list[Outcome]:
        batch = Batch(
            self.chart,
            self.max_amount,
            self._now_ms(),
            self._accounts,
            careful=careful,
            take_ids=self._take_ids,
            known_balances=self._balances,
            lock_first=lock_first,
        )
        with self.engine.connect() as conn:
            return post_batch(conn, items, batch)

    def _take_ids(self, conn: Connection, count: int) -> list[int]:
        """Transfer ids for a batch. PostgreSQL's sequence hands them out a block at a time
        (a round trip per thousand payments, not per batch); gaps are harmless. SQLite
        takes the next ids under its write lock, so there ids follow commit order."""
        if conn.dialect.name != "postgresql":
            return repo.allocate_transfer_ids(conn, count)
        with self._ids_lock:
            if len(self._spare_ids) < count:
                self._spare_ids += repo.allocate_transfer_ids(conn, max(count, ID_BLOCK))
            taken, self._spare_ids = self._spare_ids[:count], self._spare_ids[count:]
        return taken

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40001", "40P01")  # serialization failure, deadlock detected


def _insert_account(conn: Connection, chart: Chart, code: str, now_ms: int) -> None:
    repo.insert_account(
        conn,
        {
            "code": code,
            "currency": chart.currency_of(code),
            "kind": kind_of(code).value,
            "may_go_negative": chart.may_go_negative(code),
            "created_ms": now_ms,
        },
    )


KEY_EVENT_FIELDS = frozenset(
    {"v", "node", "action", "key", "owner", "public_key", "signer", "nonce", "created"}
)


def key_event(
    action: str,
    *,
    origin: str,
    owner: str,
    public_key: bytes,
    signer: SigningKey,
    now: int | None = None,
) -> dict[str, Any]:
    """A key event for `signer` to sign: register or revoke `public_key` for `owner`."""
    return {
        "v": 1,
        "node": origin,
        "action": action,
        "key": key_id(public_key),
        "owner": owner,
        "public_key": b64(public_key),
        "signer": signer.key_id,
        "nonce": b64(os.urandom(16)),
        "created": int(time.time() * 1000) if now is None else now,
    }


def may_change_keys(signer: str, owner: str) -> bool:
    """Whether a key of `signer` may register or revoke keys of `owner`: its own; the node
    any (it registers the roles' and the plugins' keys); a key officer a member's, never a
    role's or the node's, which would let it sign checkpoints or another role's orders.
    A shop's counter keys only the node, as its merchant pairs or unpairs a device: a
    counter key may not add more of its kind."""
    if owner.startswith(COUNTER):
        return signer == NODE
    if signer in (owner, NODE):
        return True
    return signer in KEY_OFFICERS and owner.startswith(f"{Kind.MEMBER}:")


def _check_key_event(
    ledger: Ledger, conn: Connection, event: dict[str, Any], signature: bytes, action: str
) -> None:
    """Refuse a key event unless its named signer's registered, unrevoked key signed exactly
    these bytes, and that signer may change the owner's keys. Runs before anything is
    written: `sou audit` would find a bad event only once it is in the log for good."""
    if event.keys() != KEY_EVENT_FIELDS or event["v"] != 1 or type(event["v"]) is not int:
        raise InvalidOrder("event", "must carry exactly the fields of a version 1 key event")
    if event["action"] != action:
        raise InvalidOrder("action", f"must be {action}")
    if event["node"] != ledger.origin:
        raise WrongNode("this key event is for another node", node=ledger.origin)
    owner = event["owner"]
    if not isinstance(owner, str) or not owner:
        raise InvalidOrder("owner", "must name who holds the key")
    try:
        public_key = unb64(event["public_key"])
    except ValueError:
        raise InvalidOrder("public_key", "must be base64url") from None
    if len(public_key) != 32 or event["key"] != key_id(public_key):
        raise InvalidOrder("public_key", "must be a 32-byte Ed25519 key matching `key`")
    signer, verifier = ledger._verify_key(str(event["signer"]), conn)
    # Held until the event commits: a revocation of the signer's key meanwhile waits.
    signer_row = repo.key_row(conn, signer.key_id, hold=True)
    if signer_row is not None and signer_row["revoked_ms"] is not None:
        raise RevokedKey("the signing key is revoked", key=signer.key_id)
    try:
        verifier.verify(canonical(event), signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        # ValueError: not 64 bytes, or not canonical JSON; TypeError: not bytes at all.
        raise BadSignature("the signature does not match this key event") from None
    if not may_change_keys(signer.owner, owner):
        raise WrongSigner(f"a key of {signer.owner} cannot change keys of {owner}")
    existing = repo.key_row(conn, str(event["key"]))
    if action == "register" and existing is not None:
        raise KeyExists("this key is already registered", key=event["key"])
    if action == "revoke":
        if existing is None or existing["owner"] != owner:
            raise UnknownKey("no such key for this owner", key=event["key"])
        if existing["revoked_ms"] is not None:
            raise RevokedKey("this key is already revoked", key=event["key"])


def _record_key_event(
    conn: Connection, event: dict[str, Any], signature: bytes, now_ms: int
) -> None:
    if event["action"] == "register":
        repo.insert_key(
            conn,
            {
                "key_id": event["key"],
                "owner": event["owner"],
                "public_key": unb64(event["public_key"]),
                "registered_ms": now_ms,
            },
        )
    else:
        repo.mark_revoked(conn, event["key"], now_ms)
    repo.insert_key_event(
        conn,
        {
            "key_id": event["key"],
            "action": event["action"],
            "event_json": canonical(event).decode(),
            "signer_key_id": event["signer"],
            "signature": signature,
            "created_ms": now_ms,
        },
    )

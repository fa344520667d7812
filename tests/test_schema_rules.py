"""The database itself holds the line, on SQLite and on PostgreSQL, even with buggy Python.

DESIGN.md musts 2, 3 and 5, as enforced by migration 0001: history is append-only; an
account's identity never changes and accounts are never deleted; a key may be revoked,
once, and nothing else about it changes; postings are written before their transfer row,
which is refused unless they sum to zero per currency and keep the units backed (on
PostgreSQL by a deferred constraint trigger, at COMMIT); a posted transfer's postings are
closed; a posting's currency is its account's; no overdraft (CHECK); one payout or
correction per transfer; unique client ids and nonces.

Every statement here is raw SQL (or SQLAlchemy Core), as a bug in the application could
send it; each refusal is an `IntegrityError` after which nothing in the database changed.
A statement of the same shape that keeps the rule is accepted, so each refusal is the
rule's doing and not a malformed row.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from audits.audit import audit
from ledger import fee_rules
from ledger import repository as repo
from ledger.models import postings, transfers
from ledger.operations import TREASURER
from ledger.posting import Posted
from ledger.sealer import DanglingQueueEntry, Sealer
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book

HISTORY = (
    "transfers",
    "postings",
    "key_events",
    "log_leaves",
    "log_nodes",
    "checkpoints",
    "fee_rules",
)
TABLES = ("ledger_meta", "accounts", "keys", "log_queue", *HISTORY)

APPEND_ONLY = r"sou: (\w+ is append-only|\w+ rows are never replaced)"
ACCOUNT_FIXED = (
    r"sou: (only an account balance may change|accounts are never deleted"
    r"|accounts rows are never replaced)"
)
KEY_REVOKE_ONLY = (
    r"sou: (a key can only be revoked, once|keys are never deleted|keys rows are never replaced)"
)
UNBALANCED = r"sou: transfer (\d+ )?postings do not sum to zero"
UNBACKED = r"sou: transfer (\d+ )?would leave units unbacked"
CLOSED = r"sou: (a posted transfer cannot get new postings|transfer \d+ is posted)"
WRONG_CURRENCY = r"FOREIGN KEY constraint failed|fk_postings_account_currency"
ORPHAN = r"FOREIGN KEY constraint failed|fk_postings_transfer"
OVERDRAFT = r"CHECK constraint failed: no_overdraft|ck_accounts_no_overdraft"
SETTLED_ONCE = r"UNIQUE constraint failed: transfers\.ref_id|uq_transfers_settles"
CLIENT_ID = (
    r"sou: transfers rows are never replaced|"
    r"UNIQUE constraint failed: transfers\.initiator, transfers\.client_id|"
    r"uq_transfers_client_id"
)
NONCE = (
    r"sou: transfers rows are never replaced|"
    r"UNIQUE constraint failed: transfers\.key_id, transfers\.nonce|uq_transfers_nonce"
)

Statement = Callable[[Connection], Any]


def sql(statement: str, **params: Any) -> Statement:
    return lambda conn: conn.execute(text(statement), params)


# -- the ledger under test -----------------------------------------------------------------


@dataclass(frozen=True)
class Village:
    engine: Engine
    alice: str
    bob: str
    carol: str  # a member with a key and an account, never posted to
    payment: int  # alice -> bob 25.00, not refunded
    corrected: int  # alice -> bob 3.00, then corrected
    redemption: int  # bob reconverts 10.00 (fee 0.30), paid out
    accounts: dict[str, int]  # code -> id
    keys: dict[str, str]  # owner -> key id


@pytest.fixture
def village(book: Book, engine: Engine) -> Village:
    """A small ledger with a row in every table: a card top-up and its settlement,
    payments, a correction, a redemption paid out, everything sealed."""
    fee_rules.record(engine, NODE_KEY, ORIGIN, 300, 0, 0)  # as a node records it on opening
    alice, bob, carol = book.member("alice", 10_000), book.member("bob"), book.member("carol")

    def post(signer: str, kind: str, **fields: Any) -> int:
        outcome = book.post(book.order(kind, signer, **fields))
        assert isinstance(outcome, Posted), outcome
        return outcome.transfer_id

    payment = post(alice, "payment", from_=alice, to=bob, amount=2_500, currency=book.local)
    corrected = post(alice, "payment", from_=alice, to=bob, amount=300, currency=book.local)
    post(TREASURER, "correction", ref=corrected, memo="Saisie en double")
    post(TREASURER, "settlement", amount=10_000, ext="po_test_1")  # Stripe pays the bank
    redemption = post(bob, "redemption", from_=bob, amount=1_000, fee=30, currency=book.local)
    post(TREASURER, "payout", ref=redemption, amount=970, bank_ref="VIR-2026-0001")
    assert Sealer(engine, NODE_KEY, ORIGIN).seal_all() > 0
    with engine.connect() as conn:
        ids = {r.code: r.id for r in conn.execute(text("SELECT code, id FROM accounts"))}
        owners = {r.owner: r.key_id for r in conn.execute(text("SELECT owner, key_id FROM keys"))}
        for table in TABLES:
            if table != "log_queue":
                assert conn.scalar(text(f"SELECT count(*) FROM {table}")), table
    return Village(engine, alice, bob, carol, payment, corrected, redemption, ids, owners)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            table: sorted(
                (tuple(r) for r in conn.execute(text(f"SELECT * FROM {table}"))), key=repr
            )
            for table in TABLES
        }


def refused(engine: Engine, match: str, *statements: Statement) -> IntegrityError:
    """The statements, in one transaction, are refused; the database is as it was."""
    before = snapshot(engine)
    with pytest.raises(IntegrityError, match=match) as caught, engine.begin() as conn:
        for statement in statements:
            statement(conn)
    assert snapshot(engine) == before
    return caught.value


def accepted(engine: Engine, *statements: Statement) -> None:
    with engine.begin() as conn:
        for statement in statements:
            statement(conn)


def refused_at(engine: Engine, match: str, *statements: Statement) -> str:
    """Like `refused`, and says whether the refusal came at a statement or at COMMIT."""
    before = snapshot(engine)
    where = "statement"
    with pytest.raises(IntegrityError, match=match), engine.connect() as conn:
        transaction = conn.begin()
        for statement in statements:
            statement(conn)
        where = "commit"
        transaction.commit()
    if where == "commit" and engine.dialect.name == "sqlite":
        engine.dispose()  # see test_a_refused_commit_leaves_the_connection_pool_usable
    assert snapshot(engine) == before
    return where


def raw_transfer(
    v: Village,
    legs: dict[str, Any],
    *,
    kind: str = "payment",
    initiator: str | None = None,
    client_id: str | None = None,
    nonce: str | None = None,
    ref_id: int | None = None,
    currency: str | None = None,
) -> Statement:
    """Postings first, then the transfer row, as `repository.insert_transfers` writes them;
    `currency` forces every leg's currency (else each account's own)."""
    initiator = initiator or v.alice
    tag = os.urandom(6).hex()

    def write(conn: Connection) -> int:
        tid = repo.allocate_transfer_ids(conn, 1)[0]
        rows = [
            {
                "transfer_id": tid,
                "account_id": v.accounts[code],
                "amount": amount,
                "currency": currency
                or conn.scalar(text("SELECT currency FROM accounts WHERE code = :c"), {"c": code}),
            }
            for code, amount in legs.items()
        ]
        if rows:
            conn.execute(postings.insert(), rows)
        conn.execute(
            transfers.insert(),
            {
                "id": tid,
                "kind": kind,
                "initiator": initiator,
                "client_id": client_id or f"raw-{tag}",
                "key_id": v.keys[initiator],
                "nonce": nonce or f"nonce-{tag}",
                "order_json": "{}",
                "signature": bytes(64),
                "ref_id": ref_id,
                "created_ms": 1_800_000_000_000,
            },
        )
        return tid

    return write


def column_of(v: Village, column: str, transfer_id: int) -> Any:
    with v.engine.connect() as conn:
        return conn.scalar(
            text(f"SELECT {column} FROM transfers WHERE id = :t"), {"t": transfer_id}
        )


def is_postgresql(v: Village) -> bool:
    return v.engine.dialect.name == "postgresql"


# -- the harness itself --------------------------------------------------------------------


def test_a_balanced_backed_transfer_written_by_hand_is_accepted(village: Village) -> None:
    before = snapshot(village.engine)["transfers"]
    accepted(village.engine, raw_transfer(village, {village.alice: -100, village.bob: 100}))
    assert len(snapshot(village.engine)["transfers"]) == len(before) + 1


# -- append-only history -------------------------------------------------------------------

UPDATES = {
    "transfers": "UPDATE transfers SET created_ms = created_ms + 1",
    "postings": "UPDATE postings SET amount = amount * 2",
    "key_events": "UPDATE key_events SET created_ms = created_ms + 1",
    "log_leaves": "UPDATE log_leaves SET idx = idx + 1000",
    "log_nodes": "UPDATE log_nodes SET idx = idx + 1000",
    "checkpoints": "UPDATE checkpoints SET note = note || ' '",
    "fee_rules": "UPDATE fee_rules SET effective_ms = effective_ms + 1",
}


@pytest.mark.parametrize("table", HISTORY)
def test_history_cannot_be_updated_or_deleted(village: Village, table: str) -> None:
    engine = village.engine
    refused(engine, APPEND_ONLY, sql(UPDATES[table]))
    refused(engine, APPEND_ONLY, sql(f"DELETE FROM {table}"))
    if is_postgresql(village):
        refused(engine, APPEND_ONLY, sql(f"TRUNCATE {table} CASCADE"))


def test_one_posted_transfer_cannot_be_rewritten_or_removed(village: Village) -> None:
    engine, tid = village.engine, village.payment
    refused(
        engine,
        APPEND_ONLY,
        sql("UPDATE postings SET amount = -amount WHERE transfer_id = :t", t=tid),
    )
    refused(engine, APPEND_ONLY, sql("UPDATE transfers SET order_json = '{}' WHERE id = :t", t=tid))
    refused(
        engine,
        APPEND_ONLY,
        sql("DELETE FROM postings WHERE transfer_id = :t", t=tid),
        sql("DELETE FROM transfers WHERE id = :t", t=tid),
    )


def test_an_upsert_on_history_is_an_update_and_is_refused(village: Village) -> None:
    refused(
        village.engine,
        APPEND_ONLY,
        sql(
            "INSERT INTO checkpoints (tree_size, root, note, created_ms) "
            "SELECT tree_size, root, 'forged', created_ms FROM checkpoints WHERE true "
            "ON CONFLICT (tree_size) DO UPDATE SET note = excluded.note"
        ),
    )


REPLACES = {
    "transfers": "INSERT OR REPLACE INTO transfers SELECT id, kind, initiator, client_id, "
    "key_id, nonce, '{}', signature, ref_id, created_ms, once_key FROM transfers",
    "key_events": "INSERT OR REPLACE INTO key_events SELECT id, key_id, action, event_json, "
    "signer_key_id, zeroblob(64), created_ms FROM key_events",
    "log_leaves": "INSERT OR REPLACE INTO log_leaves SELECT idx, transfer_id, key_event_id, "
    "zeroblob(32) FROM log_leaves",
    "log_nodes": "INSERT OR REPLACE INTO log_nodes SELECT level, idx, zeroblob(32) FROM log_nodes",
    "checkpoints": "INSERT OR REPLACE INTO checkpoints SELECT tree_size, root, 'forged', "
    "created_ms FROM checkpoints",
    "keys (owner)": "INSERT OR REPLACE INTO keys SELECT key_id, 'member:mallory', public_key, "
    "registered_ms, revoked_ms FROM keys",
    "accounts (kind)": "INSERT OR REPLACE INTO accounts (id, code, currency, kind, "
    "may_go_negative, balance, created_ms) SELECT id, code, currency, "
    "'issuance', 1, balance, created_ms FROM accounts",
}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("target", REPLACES)
def test_insert_or_replace_cannot_rewrite_rows_on_sqlite(village: Village, target: str) -> None:
    match = {"keys (owner)": KEY_REVOKE_ONLY, "accounts (kind)": ACCOUNT_FIXED}
    refused(village.engine, match.get(target, APPEND_ONLY), sql(REPLACES[target]))


# -- accounts and keys ---------------------------------------------------------------------


ACCOUNT_CHANGES = {
    "code": "code = 'member:mallory'",
    "kind": "kind = 'issuance'",
    "currency": "currency = 'EUR'",
    "may_go_negative": "may_go_negative = true",
    "created_ms": "created_ms = created_ms + 1",
}


@pytest.mark.parametrize("who", ["alice", "carol"], ids=["posted-to", "never-posted-to"])
def test_an_accounts_identity_never_changes_and_it_is_never_deleted(
    village: Village, who: str
) -> None:
    engine, code = village.engine, getattr(village, who)
    for change in ACCOUNT_CHANGES.values():
        refused(engine, ACCOUNT_FIXED, sql(f"UPDATE accounts SET {change} WHERE code = :c", c=code))
    refused(engine, ACCOUNT_FIXED, sql("DELETE FROM accounts WHERE code = :c", c=code))
    # The balance is the one figure that moves.
    accepted(engine, sql("UPDATE accounts SET balance = balance + 1 WHERE code = :c", c=code))


NEGATIVE_BY_KIND = r"sou: an account may go negative only by its kind|ck_accounts_negative_by_kind"


@pytest.mark.parametrize(
    ("code", "kind", "currency", "may_go_negative"),
    [
        ("member:mallory", "member", "SOU", True),
        ("issuance:digital2", "issuance", "SOU", False),
        ("external:eur2", "external", "EUR", False),
    ],
)
def test_an_account_is_opened_only_with_the_flags_of_its_kind(
    village: Village, code: str, kind: str, currency: str, may_go_negative: bool
) -> None:
    insert = sql(
        "INSERT INTO accounts (code, currency, kind, may_go_negative, balance, created_ms) "
        "VALUES (:c, :cur, :k, :neg, 0, 1)",
        c=code,
        cur=currency,
        k=kind,
        neg=may_go_negative,
    )
    refused(village.engine, NEGATIVE_BY_KIND, insert)


def test_a_key_is_revoked_once_and_never_changed(village: Village) -> None:
    engine, kid = village.engine, village.keys[village.carol]
    other = village.keys[village.bob]
    changes = {
        "public_key": sql(
            "UPDATE keys SET public_key = :p WHERE key_id = :k", p=bytes(range(32)), k=kid
        ),
        "owner": sql("UPDATE keys SET owner = :o WHERE key_id = :k", o=village.alice, k=kid),
        "registered_ms": sql("UPDATE keys SET registered_ms = 0 WHERE key_id = :k", k=kid),
        "key_id": sql("UPDATE keys SET key_id = 'mallory' WHERE key_id = :k", k=kid),
        "owner, with a revocation": sql(
            "UPDATE keys SET owner = :o, revoked_ms = 1 WHERE key_id = :k", o=village.alice, k=kid
        ),
        "public_key, with a revocation": sql(
            "UPDATE keys SET public_key = :p, revoked_ms = 1 WHERE key_id = :k",
            p=bytes(range(32)),
            k=kid,
        ),
    }
    for change in changes.values():
        refused(engine, KEY_REVOKE_ONLY, change)
    refused(engine, KEY_REVOKE_ONLY, sql("DELETE FROM keys WHERE key_id = :k", k=kid))
    refused(engine, KEY_REVOKE_ONLY, sql("DELETE FROM keys WHERE key_id = :k", k=other))
    # Revoked once: then never again, never un-revoked, and still never changed.
    accepted(engine, sql("UPDATE keys SET revoked_ms = 1800000000000 WHERE key_id = :k", k=kid))
    refused(
        engine,
        KEY_REVOKE_ONLY,
        sql("UPDATE keys SET revoked_ms = 1800000000001 WHERE key_id = :k", k=kid),
    )
    refused(
        engine, KEY_REVOKE_ONLY, sql("UPDATE keys SET revoked_ms = NULL WHERE key_id = :k", k=kid)
    )
    refused(engine, KEY_REVOKE_ONLY, changes["owner"])


# -- balanced postings, written before their transfer --------------------------------------


@pytest.mark.parametrize(
    "legs",
    [
        {"member:alice": -100, "member:bob": 90},
        {"member:alice": -100},
        {},
        {"member:alice": -100, "reserve:digital": 100},  # zero in total, not per currency
    ],
    ids=["off-by-ten", "one-leg", "no-postings", "across-currencies"],
)
def test_postings_that_do_not_sum_to_zero_are_refused(
    village: Village, legs: dict[str, int]
) -> None:
    where = refused_at(village.engine, UNBALANCED, raw_transfer(village, legs))
    # PostgreSQL checks at COMMIT (a deferred constraint trigger), SQLite at the row.
    assert where == ("commit" if is_postgresql(village) else "statement")


def test_a_posted_transfer_gets_no_new_postings(village: Village) -> None:
    new_leg = sql(
        "INSERT INTO postings (transfer_id, account_id, currency, amount) "
        "VALUES (:t, :a, 'SOU', :x)",
        t=village.payment,
        a=village.accounts[village.carol],
        x=100,
    )
    refused(village.engine, CLOSED, new_leg)
    balancing = sql(
        "INSERT INTO postings (transfer_id, account_id, currency, amount) "
        "VALUES (:t, :a, 'EUR', -100), (:t, :b, 'EUR', 100)",
        t=village.payment,
        a=village.accounts["external:eur"],
        b=village.accounts["clearing:stripe"],
    )
    refused(village.engine, CLOSED, balancing)


def test_postings_without_their_transfer_row_are_refused_at_commit(village: Village) -> None:
    assert refused_at(village.engine, ORPHAN, orphan_postings(village)) == "commit"


def orphan_postings(village: Village) -> Statement:
    def write(conn: Connection) -> None:
        tid = repo.allocate_transfer_ids(conn, 1)[0]
        conn.execute(
            postings.insert(),
            [
                {
                    "transfer_id": tid,
                    "account_id": village.accounts[village.alice],
                    "currency": "SOU",
                    "amount": -100,
                },
                {
                    "transfer_id": tid,
                    "account_id": village.accounts[village.bob],
                    "currency": "SOU",
                    "amount": 100,
                },
            ],
        )

    return write


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_refused_commit_leaves_the_connection_pool_usable(village: Village) -> None:
    with pytest.raises(IntegrityError, match=ORPHAN), village.engine.connect() as conn:
        transaction = conn.begin()
        orphan_postings(village)(conn)
        transaction.commit()
    with village.engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM transfers")) > 0


def test_a_postings_currency_is_its_accounts(village: Village) -> None:
    refused(
        village.engine,
        WRONG_CURRENCY,
        raw_transfer(village, {village.alice: -100, village.bob: 100}, currency="EUR"),
    )
    refused(
        village.engine,
        WRONG_CURRENCY,
        raw_transfer(village, {"external:eur": -100, "clearing:stripe": 100}, currency="SOU"),
    )


# -- no overdraft --------------------------------------------------------------------------


def test_no_overdraft_on_accounts_that_may_not_go_negative(village: Village) -> None:
    engine = village.engine
    for code in (
        village.alice,
        village.carol,
        "reserve:digital",
        "association:fees",
        "payouts:pending",
        "notes:stock",
    ):
        refused(engine, OVERDRAFT, sql("UPDATE accounts SET balance = -1 WHERE code = :c", c=code))
    refused(
        engine,
        OVERDRAFT,
        sql("UPDATE accounts SET balance = balance - 20000 WHERE code = :c", c=village.alice),
    )
    for code in ("issuance:digital", "external:eur"):  # these hold minus what they issued
        accepted(engine, sql("UPDATE accounts SET balance = balance - 1 WHERE code = :c", c=code))


# -- one payout or correction per transfer, unique client ids and nonces --------------------


@pytest.mark.parametrize(
    "case", ["second payout", "second correction", "correction after a payout"]
)
def test_a_transfer_is_paid_out_or_corrected_once(village: Village, case: str) -> None:
    v = village
    treasurer = TREASURER
    writes = {
        "second payout": raw_transfer(
            v,
            {"payouts:pending": -970, "external:eur": 970},
            kind="payout",
            initiator=treasurer,
            ref_id=v.redemption,
        ),
        "second correction": raw_transfer(
            v,
            {v.alice: 300, v.bob: -300},
            kind="correction",
            initiator=treasurer,
            ref_id=v.corrected,
        ),
        "correction after a payout": raw_transfer(
            v,
            {
                v.bob: 1_000,
                "association:fees": -30,
                "issuance:digital": -970,
                "reserve:digital": 970,
                "payouts:pending": -970,
            },
            kind="correction",
            initiator=treasurer,
            ref_id=v.redemption,
        ),
    }
    refused(v.engine, SETTLED_ONCE, writes[case])


def test_refunds_of_one_payment_may_be_several(village: Village) -> None:
    v = village
    for _ in range(2):
        accepted(
            v.engine,
            raw_transfer(
                v, {v.bob: -100, v.alice: 100}, kind="refund", initiator=v.bob, ref_id=v.payment
            ),
        )


def test_client_ids_are_unique_per_initiator_and_nonces_per_key(village: Village) -> None:
    v = village
    client_id, nonce = column_of(v, "client_id", v.payment), column_of(v, "nonce", v.payment)
    legs = {v.alice: -100, v.bob: 100}
    refused(v.engine, CLIENT_ID, raw_transfer(v, legs, client_id=client_id))
    refused(v.engine, NONCE, raw_transfer(v, legs, nonce=nonce))
    # Another member may use the same client id; another key the same nonce.
    accepted(
        v.engine,
        raw_transfer(
            v, {v.bob: -100, v.alice: 100}, initiator=v.bob, client_id=client_id, nonce=nonce
        ),
    )


# -- backing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "legs",
    [
        {"issuance:digital": -100, "member:alice": 100},
        {"reserve:digital": -100, "external:eur": 100},
        {"member:alice": -100, "member:bob": 100, "reserve:digital": -1, "external:eur": 1},
    ],
    ids=["units-without-euros", "euros-out-of-reserve", "a-payment-skimming-a-cent"],
)
def test_a_transfer_that_leaves_units_unbacked_is_refused(
    village: Village, legs: dict[str, int]
) -> None:
    where = refused_at(village.engine, UNBACKED, raw_transfer(village, legs))
    assert where == ("commit" if is_postgresql(village) else "statement")


def test_units_issued_against_euros_are_accepted(village: Village) -> None:
    accepted(
        village.engine,
        raw_transfer(
            village,
            {
                "issuance:digital": -100,
                village.alice: 100,
                "external:eur": -100,
                "clearing:stripe": 100,
            },
            initiator="node",
        ),
    )


# -- integer money -------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_fractional_amount_is_refused_on_sqlite(village: Village) -> None:
    refused(
        village.engine,
        r"sou: |CHECK constraint failed|datatype mismatch",
        raw_transfer(village, {village.alice: -1.5, village.bob: 1.5}),
    )


# -- the log's work list -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "named"), [("transfer_id", "transfer 999999"), ("key_event_id", "key event 999999")]
)
def test_a_log_queue_entry_naming_nothing_is_never_sealed(
    village: Village, book: Book, column: str, named: str
) -> None:
    """A foreign key refuses it on SQLite. PostgreSQL lost that key (migration 0006, one
    lookup less per payment): there the sealer refuses to seal past it, and resumes once
    the entry is gone."""
    ghost = sql(f"INSERT INTO log_queue ({column}) VALUES (999999)")
    if not is_postgresql(village):
        refused(village.engine, "FOREIGN KEY constraint failed", ghost)
        return
    accepted(village.engine, ghost)
    report = audit(village.engine, node_public_key=NODE_KEY.public_key, workers=1)
    stuck = f"the log queue names {named}, which is not stored: sealing is stuck"
    assert [f.message for f in report.findings] == [stuck]
    later = book.ledger.transfer(book.payment(village.alice, village.bob, 100))
    sealer = Sealer(village.engine, NODE_KEY, ORIGIN)
    with village.engine.connect() as conn:
        size = repo.log_size(conn)
    with pytest.raises(DanglingQueueEntry, match=f"names {named}, which is not stored"):
        sealer.seal()
    with village.engine.connect() as conn:
        assert repo.log_size(conn) == size  # nothing sealed, not even the payment after it
        assert repo.leaf_index(conn, later.transfer_id) is None
    accepted(village.engine, sql(f"DELETE FROM log_queue WHERE {column} = 999999"))
    assert sealer.seal_all() == 1
    with village.engine.connect() as conn:
        assert repo.leaf_index(conn, later.transfer_id) == size
    assert audit(village.engine, node_public_key=NODE_KEY.public_key, workers=1).findings == []

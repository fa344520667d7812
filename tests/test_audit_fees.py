"""Every reconversion's fee is checked against the fee rule in force on its day: the rules
are recorded, signed by the node key, whenever the node opens with other settings, and the
audit names a fee that differs from its day's rule and a rule altered in the database."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, text

from audits.audit import audit
from ledger import fee_rules
from ledger.sealer import Sealer
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book

DAY_MS = 86_400_000


def _redeem(book: Book, member: str, amount: int, fee: int, cause_fee: int = 0) -> int:
    extra: dict[str, Any] = {"cause_fee": cause_fee} if cause_fee else {}
    order = book.order(
        "redemption", member, from_=member, amount=amount, fee=fee, currency=book.local, **extra
    )
    return book.ledger.transfer(order).transfer_id


def _findings(engine: Engine) -> list[Any]:
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    report = audit(engine, node_public_key=NODE_KEY.public_key, workers=1)
    return [f for f in report.findings if f.check == "fees"]


def test_each_fee_is_checked_against_the_rule_of_its_day(book: Book, engine: Engine) -> None:
    fee_rules.record(engine, NODE_KEY, ORIGIN, 300, 0, now_ms=1)
    shop = book.member("shop", 50_000)
    book.ledger.transfer(book.order("settlement", "role:treasurer", amount=50_000))
    under_first = _redeem(book, shop, 1_000, 30)
    # The association lowers the fee to 2 %, half of it to its cause, from now on.
    second = fee_rules.record(engine, NODE_KEY, ORIGIN, 200, 50, now_ms=int(time.time() * 1000))
    assert second.previous == 1 and second.effective_ms > 1
    assert fee_rules.record(engine, NODE_KEY, ORIGIN, 200, 50, now_ms=10**13) == second
    under_second = _redeem(book, shop, 1_001, 21, cause_fee=10)  # 20.02 rounded up, half down
    assert _findings(engine) == []

    overcharged = _redeem(book, shop, 1_000, 30)  # yesterday's rate, today
    found = _findings(engine)
    assert [f.transfer_id for f in found] == [overcharged]
    assert "fee rule 2" in found[0].message and "gives 20" in found[0].message
    assert under_first < under_second < overcharged


def test_a_fee_rule_altered_or_removed_in_the_database_is_found(book: Book, engine: Engine) -> None:
    fee_rules.record(engine, NODE_KEY, ORIGIN, 300, 0, now_ms=1)
    fee_rules.record(engine, NODE_KEY, ORIGIN, 500, 0, now_ms=2)
    fee_rules.record(engine, NODE_KEY, ORIGIN, 100, 0, now_ms=3)
    assert _findings(engine) == []
    with engine.begin() as conn:
        _unprotect(conn)
        conn.execute(
            text("UPDATE fee_rules SET rule_json = replace(rule_json, :was, :now) WHERE id = 2"),
            {"was": '"reconversion_fee_bps":500', "now": '"reconversion_fee_bps":50'},
        )
    assert [f.message for f in _findings(engine)] == ["fee rule 2: not signed by the node key"]
    with engine.begin() as conn:
        _unprotect(conn)
        conn.execute(text("DELETE FROM fee_rules WHERE id = 2"))
    assert [f.message for f in _findings(engine)] == [
        "fee rule 3: follows fee rule 2, but the rule stored before it is 1"
    ]


def test_a_fee_rule_whose_text_no_longer_names_its_node_is_found(
    book: Book, engine: Engine
) -> None:
    """The rule's node is signed but never read back: an altered one must still be seen."""
    fee_rules.record(engine, NODE_KEY, ORIGIN, 300, 0, now_ms=1)
    with engine.begin() as conn:
        _unprotect(conn)
        conn.execute(
            text("UPDATE fee_rules SET rule_json = replace(rule_json, :was, :now) WHERE id = 1"),
            {"was": f'"node":"{ORIGIN}"', "now": '"node":"elsewhere.example/village"'},
        )
        stored = conn.execute(text("SELECT rule_json FROM fee_rules WHERE id = 1")).scalar_one()
    assert "elsewhere.example" in stored
    assert [f.message for f in _findings(engine)] == [
        "fee rule 1: stored columns differ from the signed rule"
    ]


def _unprotect(conn: Any) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        for action in ("update", "delete"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS fee_rules_no_{action}"))


def test_the_node_records_the_rule_of_its_settings_when_it_opens(node: Any) -> None:
    with node.engine.connect() as conn:
        rules = fee_rules.read(conn)
    assert [(r.fee_bps, r.cause_share, r.effective_ms) for r in rules] == [
        (node.settings.reconversion_fee_bps, node.settings.reconversion_cause_share, 0)
    ]

"""An office's deposit found on the bank statement is one fact, seen the same way on the
offices' page (`/treasurer/offices`, wallet_api/office) and on the bank reconciliation
(audits/reconciliation): a statement line matched to the deposit reconciles it there, undoing
the match opens it again; a deposit marked found by hand is matched by a later statement as
any other, once. Each feature keeps its own record and reads the other's through the
`sou_bank_confirmations` hook.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.people import Person, join, operator
from tests.test_office import cash_in, deposit, reading
from tests.test_reconciliation import camt, counts, upload_bytes


def credit(cents: int, bank_ref: str, label: str) -> str:
    """A CAMT.053 entry: cash paid in at the bank today."""
    today = datetime.now(UTC).date().isoformat()
    return (
        f'<Ntry><Amt Ccy="EUR">{cents // 100}.{cents % 100:02d}</Amt>'
        f"<CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{today}</Dt></BookgDt>"
        f"<AcctSvcrRef>{bank_ref}</AcctSvcrRef><AddtlNtryInf>{label}</AddtlNtryInf></Ntry>"
    )


def deposits(site: Any, *amounts_and_slips: tuple[int, str]) -> list[int]:
    """The office takes the cash in, then deposits it in the bank: the deposits' ids."""
    office, member = operator(site, "office"), join(site, "Hélène")
    total = sum(amount for amount, _ in amounts_and_slips)
    assert cash_in(office, member.id, total).status_code == 201
    made = [deposit(office, amount, slip) for amount, slip in amounts_and_slips]
    assert all(d.status_code == 201 for d in made), [d.text for d in made]
    return [int(d.json()["transfer_id"]) for d in made]


def mairie(treasurer: Person) -> dict[str, Any]:
    answer = treasurer.get("/api/v1/treasury/offices")
    assert answer.status_code == 200, answer.text
    return next(o for o in answer.json() if o["office"] == "mairie")


def recent(summary: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {d["transfer_id"]: d for d in summary["recent_deposits"]}


def reconciliation(treasurer: Person) -> dict[str, Any]:
    answer = treasurer.get("/api/v1/treasury/reconciliation", params={"account": "reserve:digital"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def matched(view: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {m["movement"]["transfer_id"]: m for m in view["matched"]}


def imported_again_changes_nothing(site: Any, treasurer: Person, statement: bytes) -> None:
    """The same statement again: no line added, none matched twice, the offices unchanged."""
    before = counts(site.app.state.node), mairie(treasurer)
    again = upload_bytes(treasurer, statement)
    assert (again["added"], again["matched"]) == (0, 0)
    assert (counts(site.app.state.node)[1:], mairie(treasurer)) == (before[0][1:], before[1])


def test_a_deposit_matched_by_a_statement_is_reconciled_until_the_match_is_undone(
    site: Any,
) -> None:
    first, second = deposits(site, (4_000, "BV-0201"), (1_000, "BV-0202"))
    treasurer = operator(site, "treasurer")
    statement = camt(credit(4_000, "BQ-REM-0201", "REMISE ESPECES BORDEREAU BV-0201"))
    done = upload_bytes(treasurer, statement)
    assert (done["added"], done["matched"]) == (1, 1)
    line = matched(done["view"])[first]["line"]

    # The offices' page and API: reconciled by the match, out of the total still to find.
    summary = mairie(treasurer)
    assert [d["transfer_id"] for d in summary["unreconciled"]] == [second]
    assert summary["unreconciled_total"] == 1_000
    assert summary["deposits_total"] == 5_000
    shown = recent(summary)[first]
    assert shown["reconciled"] is True and shown["bank_ref"] is None  # nobody typed it
    assert shown["statement_line"]["line_id"] == line["id"]
    assert shown["statement_line"]["reference"] == "BQ-REM-0201"
    assert shown["statement_line"]["booked"] == datetime.now(UTC).date().isoformat()
    assert recent(summary)[second]["reconciled"] is False
    office = operator(site, "office").get("/api/v1/office").json()
    assert {d["transfer_id"]: d["reconciled"] for d in office["deposits"]} == {
        first: True,
        second: False,
    }
    french = reading(treasurer, "fr").get("/treasurer/offices")
    assert f'id="reconcile-{first}"' not in french.text  # nothing left to type for it
    assert f'id="reconcile-{second}"' in french.text
    assert f"Rapproché de la ligne {line['id']} du relevé bancaire, passée le" in french.text
    assert "(référence BQ-REM-0201)" in french.text
    english = reading(treasurer, "en").get("/treasurer/offices")
    assert f"Matched to line {line['id']} of the bank statement, booked on" in english.text
    # The reconciliation's page links to the deposit, shown first on the offices' page.
    view = reconciliation(treasurer)
    assert matched(view)[first]["movement"]["confirm_at"] == f"/treasurer/offices?deposit={first}"
    there = reading(treasurer, "en").get(f"/treasurer/offices?deposit={first}")
    assert 'id="deposit-shown"' in there.text and "(reference BQ-REM-0201)" in there.text

    # Marking it by hand now: it is reconciled already.
    twice = treasurer.post(
        f"/api/v1/treasury/deposits/{first}/reconciled", json={"bank_ref": "BQ-REM-0201"}
    )
    assert (twice.status_code, twice.json()["error"]) == (409, "already_reconciled")
    assert recent(mairie(treasurer))[first]["bank_ref"] is None

    # The same statement again: nothing new, nothing matched twice, nothing changes.
    imported_again_changes_nothing(site, treasurer, statement)

    # Undoing the match opens the deposit again, on both pages.
    undone = treasurer.delete(
        f"/api/v1/treasury/reconciliation/matches/{matched(view)[first]['id']}"
    )
    assert undone.status_code == 204, undone.text
    summary = mairie(treasurer)
    assert [d["transfer_id"] for d in summary["unreconciled"]] == [first, second]
    assert summary["unreconciled_total"] == 5_000
    assert recent(summary)[first]["statement_line"] is None
    assert f'id="reconcile-{first}"' in treasurer.get("/treasurer/offices").text
    assert first in {m["transfer_id"] for m in reconciliation(treasurer)["unmatched_movements"]}
    # ... and then marked by hand, as before the reconciliation knew of it.
    by_hand = treasurer.post(
        f"/api/v1/treasury/deposits/{first}/reconciled", json={"bank_ref": "BQ-REM-0201"}
    )
    assert by_hand.status_code == 200, by_hand.text
    assert by_hand.json()["reconciled"] is True and by_hand.json()["statement_line"] is None


def test_a_deposit_reconciled_by_hand_is_matched_by_a_later_statement_once(site: Any) -> None:
    first, second = deposits(site, (4_000, "BV-0301"), (4_000, "BV-0302"))
    treasurer = operator(site, "treasurer")
    # The treasurer found the second on the bank's website, under the bank's reference.
    by_hand = treasurer.post(
        f"/api/v1/treasury/deposits/{second}/reconciled", json={"bank_ref": "BQ-7781"}
    )
    assert by_hand.status_code == 200, by_hand.text
    assert mairie(treasurer)["unreconciled_total"] == 4_000

    # The month's statement: the second's line names only the bank's reference the
    # treasurer typed, the first's names its slip. Both the same amount.
    statement = camt(
        credit(4_000, "BQ-7781", "VERSEMENT ESPECES"),
        credit(4_000, "BQ-7790", "REMISE ESPECES BV-0301"),
    )
    done = upload_bytes(treasurer, statement)
    assert (done["added"], done["matched"]) == (2, 2)
    view = done["view"]
    pairs = {tid: (m["line"]["reference"], m["how"]) for tid, m in matched(view).items()}
    assert pairs == {second: ("BQ-7781", "reference"), first: ("BQ-7790", "reference")}
    assert matched(view)[second]["movement"]["reconciled_by_hand"] == "BQ-7781"
    assert (view["matched_total"], view["unmatched_movements"]) == (8_000, [])

    # Counted once: reconciled, by hand and by the statement, nothing left to find.
    summary = mairie(treasurer)
    assert (summary["unreconciled"], summary["unreconciled_total"]) == ([], 0)
    assert (summary["deposits_total"], summary["deposits_count"]) == (8_000, 2)
    both = recent(summary)[second]
    assert (both["bank_ref"], both["reconciled_by"]) == ("BQ-7781", treasurer.id)
    assert both["statement_line"]["reference"] == "BQ-7781"
    french = reading(treasurer, "fr").get("/treasurer/offices")
    assert "Rapproché à la main avec la référence BQ-7781" in french.text
    assert french.text.count("(référence BQ-7781)") == 1
    page = reading(treasurer, "fr").get("/treasurer/reconciliation")
    assert "Rapproché aussi à la main avec la référence BQ-7781." in page.text

    # The same statement again changes nothing.
    imported_again_changes_nothing(site, treasurer, statement)

    # Undoing the statement's match leaves the treasurer's word standing.
    undone = treasurer.delete(
        f"/api/v1/treasury/reconciliation/matches/{matched(view)[second]['id']}"
    )
    assert undone.status_code == 204, undone.text
    summary = mairie(treasurer)
    assert summary["unreconciled_total"] == 0
    assert recent(summary)[second]["statement_line"] is None
    assert recent(summary)[second]["reconciled"] is True
    left = reconciliation(treasurer)["unmatched_movements"]
    assert [(m["transfer_id"], m["reconciled_by_hand"]) for m in left] == [(second, "BQ-7781")]
    page = reading(treasurer, "fr").get("/treasurer/reconciliation")
    assert "rapproché à la main sur la page des comptoirs avec la référence BQ-7781" in page.text

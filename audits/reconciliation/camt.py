"""CAMT.053 (ISO 20022 bank-to-customer statement), as French banks export it.

Read with defusedxml: a document type, an entity or an external reference is refused
before anything is read (a billion-laughs file, a file pointing at /etc/passwd). Only
booked entries count (`Sts` BOOK); pending ones will come back booked on a later statement.

One entry (`Ntry`) is one line, even when the bank booked a whole transfer file on it (a
batch: `NtryDtls/Btch`, one `TxDtls` per transfer). Such a line carries every transfer's
EndToEndId (`end_to_end`, space-separated, as many whole ones as fit in 140 characters) and
the batch's PmtInfId and MsgId (`extra_ref`), so that the matching can name its payouts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import date

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from audits.reconciliation import errors
from audits.reconciliation.parsed import MAX_TEXT, ParsedLine, Statement, cents, clip

NAMESPACE = re.compile(r"^\{urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d{2})\}Document$")


def parse(data: bytes, name: str = "") -> Statement:
    root = _root(data)
    found = NAMESPACE.match(root.tag)
    if found is None or int(found.group(1)) < 2:
        raise errors.NOT_CAMT053()
    ns = {"c": root.tag[1:].split("}")[0]}
    stmts = root.findall("c:BkToCstmrStmt/c:Stmt", ns)
    if not stmts:
        raise errors.NOT_CAMT053()
    lines: list[ParsedLine] = []
    iban = None
    for stmt in stmts:
        iban = iban or _text(stmt, "c:Acct/c:Id/c:IBAN", ns)
        for entry in stmt.findall("c:Ntry", ns):
            line = _entry(entry, ns, len(lines) + 1)
            if line is not None:
                lines.append(line)
    stmt_id = _text(stmts[0], "c:Id", ns)
    return Statement(lines, account_id=iban, name=name or stmt_id or "camt.053")


def _root(data: bytes) -> ET.Element:
    try:
        root: ET.Element = fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise errors.HOSTILE_XML() from exc
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 0
        raise errors.MALFORMED_XML(line=line, reason=str(exc).split(":")[0]) from exc
    return root


def _text(node: ET.Element, path: str, ns: dict[str, str]) -> str | None:
    found = node.find(path, ns)
    return clip(found.text) if found is not None and found.text else None


def _date(node: ET.Element, path: str, ns: dict[str, str], entry: int) -> date | None:
    text = _text(node, path + "/c:Dt", ns) or _text(node, path + "/c:DtTm", ns)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError as exc:
        raise errors.BAD_ENTRY(entry=entry, reason=f"{text!r} is not a date") from exc


def _entry(entry: ET.Element, ns: dict[str, str], number: int) -> ParsedLine | None:
    status = _text(entry, "c:Sts/c:Cd", ns) or _text(entry, "c:Sts", ns)
    if status is not None and status != "BOOK":
        return None
    amount = entry.find("c:Amt", ns)
    if amount is None or not amount.text:
        raise errors.BAD_ENTRY(entry=number, reason="it has no amount")
    currency = amount.get("Ccy", "")
    if currency != "EUR":
        raise errors.NOT_EUROS(entry=number, currency=currency or "?")
    try:
        figure = cents(amount.text, decimal_comma=False)
    except ValueError as exc:
        raise errors.BAD_ENTRY(entry=number, reason=str(exc)) from exc
    sign = _text(entry, "c:CdtDbtInd", ns)
    if sign not in ("CRDT", "DBIT") or figure <= 0:
        raise errors.BAD_ENTRY(entry=number, reason="it is neither a credit nor a debit")
    booked = _date(entry, "c:BookgDt", ns, number)
    if booked is None:
        raise errors.BAD_ENTRY(entry=number, reason="it has no booking date")
    tx = "c:NtryDtls/c:TxDtls"
    ends = [_text(t, "c:Refs/c:EndToEndId", ns) for t in entry.findall(tx, ns)]
    batch = [_text(entry, f"c:NtryDtls/c:Btch/c:{name}", ns) for name in ("PmtInfId", "MsgId")]
    label = " ".join(
        t.text.strip() for t in entry.findall(tx + "/c:RmtInf/c:Ustrd", ns) if t.text
    ) or (_text(entry, "c:AddtlNtryInf", ns) or "")
    return ParsedLine(
        booked=booked,
        amount=figure if sign == "CRDT" else -figure,
        value_date=_date(entry, "c:ValDt", ns, number),
        reference=_text(entry, "c:AcctSvcrRef", ns),
        end_to_end=_fitted(e for e in ends if e != "NOTPROVIDED"),
        extra_ref=_fitted(batch),
        label=clip(label) or "",
    )


def _fitted(references: Iterable[str | None]) -> str | None:
    """References as one field: each once, whole, as many as fit in 140 characters (a
    batch of many transfers names its first ones; its bank reference still names it)."""
    kept: list[str] = []
    for ref in dict.fromkeys(r for r in references if r):
        if kept and len(" ".join([*kept, ref])) > MAX_TEXT:
            break
        kept.append(ref)
    return clip(" ".join(kept))

"""The AMAP's pages: the members' (contracts, subscribing, paying, ordering, their baskets),
the producer's (products, statement) and the coordinators' (distributions, sheets). What the
pages do goes through the API (static/amap.js), signed on the member's device."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from members.access import MaybeMember, node_of, signed_in, wallet_holder
from plugins.amap import errors, service, sheets
from web.i18n import language_of, money
from web.pages import PathId, day, number_format, page, say, when

router = APIRouter(include_in_schema=False)
Format = Annotated[Literal["html", "csv", "pdf"], Query()]
EVERYONE = ("resident", "merchant", "admin", "office", "treasurer")


def _money(request: Request, cents: int) -> str:
    return money(cents, language_of(request), node_of(request).ledger.chart.local)


def _day(request: Request, iso: str) -> str:
    return day(request, date.fromisoformat(iso))


def _file(content: bytes, kind: str, name: str) -> Response:
    media = "text/csv; charset=utf-8" if kind == "csv" else "application/pdf"
    disposition = f'attachment; filename="{name}.{kind}"'
    return Response(content, media_type=media, headers={"Content-Disposition": disposition})


@router.get("/amap")
def home(request: Request, p: MaybeMember, format: Format = "html") -> Response:
    """Contracts to join, and the member's baskets and payments (or their list as a sheet)."""
    me = signed_in(request, p, *EVERYONE)
    if isinstance(me, Response):
        return me
    node = node_of(request)
    mine = service.subscriptions_of(node, me) if me.has_wallet else []
    if format != "html":
        header = [say(request, h) for h in ("Contract", "Day", "Product", "Quantity", "Price")]
        rows = [
            [
                s["title"],
                _day(request, b["day"]),
                b["name"],
                f"{b['quantity']} {b['unit']}",
                _money(request, b["quantity"] * b["unit_price"]),
            ]
            for s in mine
            for b in s["baskets"]
        ]
        if format == "csv":
            return _file(sheets.as_csv(header, rows), "csv", "paniers")
        title = say(request, "My baskets")
        return _file(sheets.as_pdf(title, me.display_name, header, rows), "pdf", "paniers")
    return page(
        request,
        "amap/home.html",
        contracts=service.all_contracts(node),
        subscribed={s["contract"]: s for s in mine},
        mine=mine,
        natures=service.NATURES,
        states=service.STATES,
        producer=service.is_producer(node, me.id),
        producers=service.producers_list(node) if me.role == "admin" else [],
        places=service.places_list(node) if me.role == "admin" else [],
        coordinates=bool(service.may_coordinate(node, me)),
        day_of=lambda iso: _day(request, iso),
        when=lambda ms: when(request, ms),
    )


@router.get("/amap/contracts/{contract_id}")
def contract_page(contract_id: PathId, request: Request, p: MaybeMember) -> Response:
    """A contract: subscribe, pay, order for the coming distributions, declare an absence."""
    me = wallet_holder(request, p)
    if isinstance(me, Response):
        return me
    node = node_of(request)
    deal = service.contract(node, contract_id)
    mine = next(
        (s for s in service.subscriptions_of(node, me) if s["contract"] == contract_id), None
    )
    now = service.now_ms()
    coming = [d for d in deal["distributions"] if d["state"] == "planned" and d["cutoff_ms"] > now]
    ordered: dict[int, dict[int, int]] = {}
    for b in mine["baskets"] if mine else []:
        ordered.setdefault(b["distribution"], {})[b["product"]] = b["quantity"]
    stocks = {d["id"]: service.distribution(node, d["id"])["stock"] for d in coming}
    return page(
        request,
        "amap/contract.html",
        deal=deal,
        mine=mine,
        quote=service.quote(node, contract_id) if deal["nature"] == "subscription" else None,
        coming=coming,
        ordered=ordered,
        stocks=stocks,
        natures=service.NATURES,
        states=service.STATES,
        number=number_format(request),
        max_amount=node_of(request).settings.max_amount,
        day_of=lambda iso: _day(request, iso),
        when=lambda ms: when(request, ms),
    )


@router.get("/amap/producer")
def producer_page(request: Request, p: MaybeMember, format: Format = "html") -> Response:
    """The producer's products and prices, and statement: owed, delivered, paid."""
    me = signed_in(request, p, "merchant")
    if isinstance(me, Response):
        return me
    node = node_of(request)
    if not service.is_producer(node, me.id):
        raise errors.NOT_A_PRODUCER()
    figures = service.statement(node, me.id)
    if format != "html":
        labels = {
            "to_deliver": "To deliver",
            "delivered": "Delivered",
            "paid": "Paid to you",
            "owed": "Owed",
        }
        header = [say(request, "Statement"), say(request, "Amount")]
        rows = [[say(request, labels[k]), _money(request, figures[k])] for k in labels]
        if format == "csv":
            return _file(sheets.as_csv(header, rows), "csv", "releve")
        title = say(request, "Statement")
        return _file(sheets.as_pdf(title, me.display_name, header, rows), "pdf", "releve")
    return page(
        request,
        "amap/producer.html",
        products=service.products_of(node, me.id),
        statement=figures,
        balance=node.ledger.balance(me.account),
        number=number_format(request),
        max_amount=node_of(request).settings.max_amount,
    )


@router.get("/amap/coordination")
def coordination_page(request: Request, p: MaybeMember) -> Response:
    """The coordinator's contracts: distributions, stock, delivered or cancelled, sheets."""
    me = signed_in(request, p, *EVERYONE)
    if isinstance(me, Response):
        return me
    node = node_of(request)
    deals = service.coordinator_view(node, me)
    for deal in deals:
        deal["products"] = service.products_of(node, deal["producer"])
    return page(
        request,
        "amap/coordination.html",
        deals=deals,
        places=service.places_list(node),
        states=service.STATES,
        natures=service.NATURES,
        day_of=lambda iso: _day(request, iso),
        when=lambda ms: when(request, ms),
    )


@router.get("/amap/distributions/{distribution_id}/sheet")
def distribution_sheet(
    distribution_id: PathId, request: Request, p: MaybeMember, format: Format = "pdf"
) -> Response:
    """Who takes what at a distribution, with a box to tick: CSV or PDF."""
    me = signed_in(request, p, *EVERYONE)
    if isinstance(me, Response):
        return me
    dist, rows = service.sheet(node_of(request), me, distribution_id)
    header = [say(request, h) for h in ("Member", "Product", "Quantity", "Price", "Payment")]
    table = [
        [
            r["name"],
            r["product_name"],
            f"{r['quantity']} {r['unit']}",
            _money(request, r["quantity"] * r["unit_price"]),
            say(request, "Paid for" if r["paid"] else "To settle"),
        ]
        for r in rows
    ]
    name = f"distribution-{dist['day']}"
    if format == "csv":
        return _file(sheets.as_csv(header, table), "csv", name)
    subtitle = f"{_day(request, dist['day'])} · {dist['place_name']}"
    return _file(sheets.as_pdf(dist["title"], subtitle, header, table, tick=True), "pdf", name)

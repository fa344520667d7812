"""Stripe Checkout Sessions for localstripe, which has none: loaded into the localstripe
process by `tests/stripe_server.py` before it serves (this module imports localstripe, not the
project). It adds the API the node uses, `POST /v1/checkout/sessions` and
`GET /v1/checkout/sessions/{id}`, and the hosted page a session's `url` points at, where a
test or a browser pays as a customer does on Stripe's page.

Modelled on Stripe's API (the shapes of API version 2022-08-01 and later): a session in
`payment` mode is `open`, `unpaid`, with no PaymentIntent until it is paid. Paying on its
page makes a PaymentIntent of the session's total with `payment_intent_data.metadata`, and
confirms it with the card typed: localstripe then sends its own signed
`payment_intent.succeeded` (or `payment_intent.payment_failed` for a declined card). The
session becomes `complete` and `paid`, names its PaymentIntent, loses its `url`, and
`checkout.session.completed` is sent signed as localstripe signs every webhook; the browser
goes to `success_url` with `{CHECKOUT_SESSION_ID}` replaced. A declined card shows Stripe's
message and leaves the session open, as on Stripe's page. The page's back link is
`cancel_url`. Only what the node uses is implemented: one-off card payments of `price_data`
line items; anything else is refused with a 400 naming it.

Test cards, as Stripe's: 4242 4242 4242 4242 pays, 4000 0000 0000 0341 is declined; any
expiry date to come, any three-digit CVC.
"""

from __future__ import annotations

import datetime
import html
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from localstripe import server
from localstripe.errors import UserError
from localstripe.resources import (
    Event,
    PaymentIntent,
    PaymentMethod,
    StripeObject,
    try_convert_to_int,
)
from localstripe.webhooks import schedule_webhook

PAGE = "/checkout.stripe.com/c/pay/"  # as localstripe serves Stripe.js under /js.stripe.com/
SESSION_ID = "{CHECKOUT_SESSION_ID}"  # replaced in `success_url` by the session's id
OPEN_S = 24 * 3600  # a session expires a day after it was made, as by default on Stripe


def _refused(message: str, param: str) -> UserError:
    return UserError(400, message, {"param": param})


class CheckoutSession(StripeObject):
    """A Checkout Session in `payment` mode. Every public attribute is part of the JSON
    (localstripe exports them all): helpers are private."""

    object = "checkout.session"
    _id_prefix = "cs_test_"

    def __init__(
        self,
        mode: Any = None,
        line_items: Any = None,
        success_url: Any = None,
        cancel_url: Any = None,
        client_reference_id: Any = None,
        customer_email: Any = None,
        currency: Any = None,
        metadata: Any = None,
        payment_intent_data: Any = None,
        allowed_payment_method_types: Any = None,
        payment_method_types: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        if mode != "payment":
            raise _refused("Only `mode=payment` is implemented here.", "mode")
        items = _line_items(line_items)
        currencies = {item["currency"] for item in items}
        if len(currencies) != 1 or (currency is not None and {currency} != currencies):
            raise _refused("Every line item must be in the session's currency.", "currency")
        intent_data = _payment_intent_data(payment_intent_data)
        for name, value in (
            ("allowed_payment_method_types", allowed_payment_method_types),
            ("payment_method_types", payment_method_types),
        ):
            if value is not None and value != ["card"]:
                raise _refused("Only card payments are implemented here.", name)
        for name, value in (
            ("success_url", success_url),
            ("cancel_url", cancel_url),
            ("client_reference_id", client_reference_id),
            ("customer_email", customer_email),
        ):
            if value is not None and not isinstance(value, str):
                raise _refused(f"Invalid {name}.", name)
        if not isinstance(success_url, str) or not success_url.startswith("http"):
            raise _refused("Missing required param: success_url.", "success_url")

        super().__init__()  # stores the session: every refusal is above

        total = sum(item["amount_total"] for item in items)
        self.mode = "payment"
        self.status = "open"
        self.payment_status = "unpaid"
        self.payment_intent: str | None = None
        self.amount_subtotal = total
        self.amount_total = total
        self.currency = currencies.pop()
        self.client_reference_id = client_reference_id
        self.customer = None
        self.customer_email = customer_email
        self.customer_details: dict[str, Any] | None = None
        self.metadata = _metadata(metadata, "metadata")
        self.allowed_payment_method_types = allowed_payment_method_types
        self.payment_method_types = ["card"]
        self.success_url = success_url
        self.cancel_url = cancel_url
        self.expires_at = self.created + OPEN_S
        self.ui_mode = "hosted_page"
        self.url: str | None = None  # set once made: the page is on this server
        self._items = items
        self._intent_metadata = intent_data

    def _pay(self, card: dict[str, Any], email: str, name: str) -> PaymentIntent:
        """Make and confirm the session's PaymentIntent with this card; a declined card
        raises localstripe's 402 and leaves the session open."""
        method = PaymentMethod(type="card", card=card, billing_details={"name": name or None})
        intent = PaymentIntent._api_create(
            confirm=True,
            amount=self.amount_total,
            currency=self.currency,
            payment_method=method.id,
            metadata=dict(self._intent_metadata),
            payment_method_types=["card"],
        )
        if intent.status != "succeeded":  # a card asking for 3-D Secure: not done here
            PaymentIntent._api_cancel(intent.id)
            raise UserError(402, "This card asks for an authentication this page cannot do.")
        self.payment_intent = intent.id
        self.status = "complete"
        self.payment_status = "paid"
        self.url = None  # Stripe gives a session's url only while it is open
        self.customer_details = {"email": email or None, "name": name or None}
        schedule_webhook(Event("checkout.session.completed", self))
        return intent

    def _success_url(self) -> str:
        return str(self.success_url).replace(SESSION_ID, self.id)


def _line_items(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _refused("Missing required param: line_items.", "line_items")
    return [_line_item(item, f"line_items[{n}]") for n, item in enumerate(value)]


def _line_item(item: Any, param: str) -> dict[str, Any]:
    if not isinstance(item, dict) or set(item) - {"price_data", "quantity"}:
        raise _refused("Only `price_data` and `quantity` are implemented here.", param)
    price = item.get("price_data")
    quantity = try_convert_to_int(item.get("quantity"))
    if not isinstance(price, dict) or set(price) - {"currency", "unit_amount", "product_data"}:
        raise _refused("Missing or unexpected price_data.", f"{param}[price_data]")
    unit_amount = try_convert_to_int(price.get("unit_amount"))
    product = price.get("product_data")
    if not isinstance(unit_amount, int) or unit_amount <= 0:
        raise _refused("Invalid unit_amount.", f"{param}[price_data][unit_amount]")
    if not isinstance(price.get("currency"), str) or not price["currency"]:
        raise _refused("Missing currency.", f"{param}[price_data][currency]")
    if not isinstance(product, dict) or not isinstance(product.get("name"), str):
        raise _refused("Missing product name.", f"{param}[price_data][product_data][name]")
    if not isinstance(quantity, int) or quantity <= 0:
        raise _refused("Invalid quantity.", f"{param}[quantity]")
    return {
        "name": product["name"],
        "currency": price["currency"],
        "quantity": quantity,
        "amount_total": unit_amount * quantity,
    }


def _payment_intent_data(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - {"metadata"}:
        raise _refused("Only `metadata` is implemented here.", "payment_intent_data")
    return _metadata(value.get("metadata"), "payment_intent_data[metadata]")


def _metadata(value: Any, param: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _refused("Invalid metadata.", param)
    return dict(value)


# -- the API ---------------------------------------------------------------------------------


async def _create(request: web.Request) -> web.Response:
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    session = CheckoutSession(**data)
    session.url = f"{request.url.origin()}{PAGE}{session.id}"
    return server.json_response(session._export(expand=expand))


# -- the customer's page ---------------------------------------------------------------------


def _money(cents: int, currency: str) -> str:
    return f"{cents // 100}.{cents % 100:02d} {currency.upper()}"


def _page(session: CheckoutSession, *, status: int = 200, error: str = "") -> web.Response:
    """Stripe's hosted page, as little of it as a customer needs: what is paid, the card
    form, why a card was refused, the way back."""
    e = html.escape
    back = ""
    if session.cancel_url:
        back = f'<p><a id="back" href="{e(session.cancel_url)}">← Back</a></p>'
    items = "".join(
        f"<li>{e(item['name'])} × {item['quantity']}: "
        f"{_money(item['amount_total'], item['currency'])}</li>"
        for item in session._items
    )
    alert = f'<p id="error" role="alert">{e(error)}</p>' if error else ""
    if session.status == "open":
        form = f"""<form id="payment-form" method="post">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="email"
 value="{e(session.customer_email or "")}">
<label for="cardNumber">Card number</label>
<input id="cardNumber" name="cardNumber" inputmode="numeric" autocomplete="cc-number"
 placeholder="1234 1234 1234 1234">
<label for="cardExpiry">Expiration</label>
<input id="cardExpiry" name="cardExpiry" autocomplete="cc-exp" placeholder="MM / YY">
<label for="cardCvc">CVC</label>
<input id="cardCvc" name="cardCvc" inputmode="numeric" autocomplete="cc-csc" placeholder="CVC">
<label for="billingName">Cardholder name</label>
<input id="billingName" name="billingName" autocomplete="cc-name">
<button id="submit" type="submit" data-testid="hosted-payment-submit-button">Pay</button>
</form>"""
    else:
        form = f'<p id="closed">This Checkout Session is {e(session.status)}.</p>'
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Checkout (localstripe)</title></head>
<body data-session="{e(session.id)}" data-status="{e(session.status)}">
{back}
<h1 id="total">{_money(session.amount_total, session.currency)}</h1>
<ul id="line-items">{items}</ul>
{alert}
{form}
</body></html>
"""
    return web.Response(text=body, content_type="text/html", status=status)


def _session_of(request: web.Request) -> CheckoutSession:
    found = CheckoutSession._api_retrieve(request.match_info["id"])
    assert isinstance(found, CheckoutSession)
    return found


async def _show(request: web.Request) -> web.Response:
    return _page(_session_of(request))


async def _submit(request: web.Request) -> web.StreamResponse:
    """The page's form: pay, then go back to the merchant's `success_url`."""
    session = _session_of(request)
    if session.status != "open":
        return _page(session, status=409, error="This Checkout Session is no longer open.")
    form = await request.post()
    try:
        card = _card(form)
        session._pay(card, str(form.get("email") or ""), str(form.get("billingName") or ""))
    except UserError as refused:
        return _page(session, status=refused.code, error=refused.body["error"]["message"])
    raise web.HTTPSeeOther(session._success_url())


def _card(form: Mapping[str, Any]) -> dict[str, Any]:
    """The card typed, as localstripe's PaymentMethod takes it; Stripe's words if it is
    not a card."""
    number = re.sub(r"\s", "", str(form.get("cardNumber") or ""))
    expiry = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", str(form.get("cardExpiry") or ""))
    cvc = str(form.get("cardCvc") or "").strip()
    if not re.fullmatch(r"\d{16}", number):
        raise UserError(402, "Your card number is incomplete.")
    if expiry is None or not 1 <= int(expiry[1]) <= 12:
        raise UserError(402, "Your card's expiration date is incomplete.")
    month, year = int(expiry[1]), int(expiry[2]) % 100 + 2000
    today = datetime.date.today()
    if (year, month) < (today.year, today.month):
        raise UserError(402, "Your card's expiration year is in the past.")
    if not re.fullmatch(r"\d{3}", cvc):
        raise UserError(402, "Your card's security code is incomplete.")
    return {"number": number, "exp_month": month, "exp_year": year, "cvc": cvc}


# -- installing ------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _auth_but_the_page(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The API needs the secret key; the customer's page, like Stripe's, does not."""
    if request.path.startswith(PAGE):
        return await handler(request)
    answer: web.StreamResponse = await server.auth_middleware(request, handler)
    return answer


def install() -> None:
    """Add Checkout Sessions to localstripe's app, before it serves."""
    app = server.app
    app.router.add_post("/v1/checkout/sessions", _create)
    app.router.add_get(
        "/v1/checkout/sessions/{id}", server.api_retrieve(CheckoutSession, "/v1/checkout/sessions")
    )
    app.router.add_get(PAGE + "{id}", _show)
    app.router.add_post(PAGE + "{id}", _submit)
    middlewares = app.middlewares
    middlewares[middlewares.index(server.auth_middleware)] = _auth_but_the_page

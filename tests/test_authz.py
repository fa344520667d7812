"""The authorisation matrix: every route of the app, every kind of caller.

`TABLE` says, for each route, which callers may use it. The test sends each caller a
plausible request to each route: a caller not allowed must be refused (401 or 403, or sent
to the login page for a page); an allowed caller must get the route's success (the status
it declares, 303 to a page other than the login for a form), or else the domain refusal
its row writes down for that caller with that data (a card payment on a node without
Stripe keys, say). "Not refused" is not enough: a 404, 409 or 422 on a request the table
thinks plausible hides whether the caller was let in at all. A route of the app missing
from the table fails the test by name: a new endpoint must say who may use it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from ledger.canonical import b64
from ledger.signing import SigningKey, new_order
from tests import (
    authz_amap,
    authz_audit,
    authz_crowdfunding,
    authz_exports,
    authz_payouts,
    authz_reconciliation,
    authz_reports,
    authz_transparency,
)
from tests.conftest import PASSWORD
from tests.people import Person, fund, join, operator
from tests.test_wallet_api import wait_sealed

ANONYMOUS, RESIDENT, MERCHANT = "anonymous", "resident", "merchant"
OFFICE, TREASURER, ADMIN = "office", "treasurer", "admin"
WALLET_TOKEN, POS_TOKEN = "wallet token", "pos token"  # a resident's, a merchant's
COUNTER_SESSION = "counter session"  # a tablet paired with the merchant's counter
CALLERS = (
    ANONYMOUS,
    RESIDENT,
    MERCHANT,
    OFFICE,
    TREASURER,
    ADMIN,
    WALLET_TOKEN,
    POS_TOKEN,
    COUNTER_SESSION,
)

EVERYONE = frozenset(CALLERS)
# A point-of-sale device only reads its payments; a paired one also opens the counter's pages.
PEOPLE = EVERYONE - {POS_TOKEN, COUNTER_SESSION}
LOGGED_IN = PEOPLE - {ANONYMOUS}
HOLDERS = frozenset({RESIDENT, MERCHANT, WALLET_TOKEN})  # members with a wallet
PASSWORD_HOLDERS = HOLDERS - {WALLET_TOKEN}  # keys and tokens take the password
PASSWORD_PEOPLE = LOGGED_IN - {WALLET_TOKEN}  # one's password and sessions: a person's session
COUNTER = frozenset({MERCHANT, POS_TOKEN, COUNTER_SESSION})  # a shop's point of sale
AT_THE_TILL = frozenset({MERCHANT, COUNTER_SESSION})  # the counter's pages
NOBODY_BUT = frozenset

SKIPPED = ("/static", "/openapi.json")
UNKNOWN_ID = 987_654_321
NO_SESSION = "0" * 20  # names no session of anyone
NO_RESET = "A" * 43  # a reset link's token, of no link
ELSEWHERE = "https://elsewhere.example/n/A/1?d=100&s=x"  # a note of another site
_serial = itertools.count(1)


@dataclass
class World:
    """The people and things the requests name."""

    site: TestClient
    people: dict[str, Person]
    tokens: dict[str, str]
    victim: Person  # whose keys the operators recover
    transfer: int  # a payment from the resident to the merchant
    redemption_fee: int
    # What the callers may revoke or decide, one each (see `world`).
    spare_keys: dict[str, str] = field(default_factory=dict)
    spare_tokens: dict[str, int] = field(default_factory=dict)
    deposits: list[int] = field(default_factory=list)  # office deposits to reconcile
    reconversions: list[int] = field(default_factory=list)  # pending requests
    client_ids: dict[str, str] = field(default_factory=dict)  # of an order each holder sent
    checkpoint_size: int = 0  # of the latest checkpoint, once all the above is sealed

    def unique(self, stem: str) -> str:
        return f"{stem}-{next(_serial)}"

    def payment(self, caller: str) -> dict[str, Any]:
        """A payment signed by the caller's own wallet key (the resident's for others)."""
        payer = self.people[MERCHANT if caller == MERCHANT else RESIDENT]
        payee = self.people[RESIDENT if caller == MERCHANT else MERCHANT]
        return order_of(payer, "payment", to=payee.account, amount=1)

    def payer(self, caller: str) -> Person:
        """Whose wallet a holder's request moves: a wallet token's is the resident's."""
        return self.people[MERCHANT if caller == MERCHANT else RESIDENT]

    def refund(self) -> dict[str, Any]:
        """The merchant gives back a cent of the resident's payment."""
        resident = self.people[RESIDENT]
        return order_of(
            self.people[MERCHANT], "refund", to=resident.account, amount=1, ref=self.transfer
        )

    def collection(self) -> dict[str, Any]:
        """A collection whose authorisation is not one: the shop's signature only."""
        merchant = self.people[MERCHANT]
        return order_of(
            merchant, "collection", to=merchant.account, amount=1, auth="AAAA", auth_sig="AAAA"
        )

    def authorisation(self, caller: str) -> dict[str, str]:
        from tests.test_pos_codes import _auth

        return _auth(self.payer(caller), 100)

    def allowance(self, caller: str) -> dict[str, Any]:
        from ledger.operations import allowance_escrow

        payer = self.payer(caller)
        assert payer.key is not None
        held = order_of(payer, "allowance_hold", to=allowance_escrow(payer.account), amount=100)
        return {**held, "device_key": payer.key.key_id}

    def redemption(self, caller: str) -> dict[str, Any]:
        payer = self.people[MERCHANT if caller != RESIDENT else RESIDENT]
        return order_of(payer, "redemption", amount=1_000, fee=self.redemption_fee)


def order_of(person: Person, kind: str, **fields: Any) -> dict[str, Any]:
    assert person.key is not None
    origin = person.client.app.state.node.ledger.origin  # type: ignore[attr-defined]
    body = new_order(kind, person.key, origin, currency="SOU", **fields)
    body["from"] = person.account
    return person.key.sign(body).to_json()


def shop_slug(w: World) -> str:
    from members.shops import shop_of

    with w.site.app.state.node.ledger.reading() as conn:  # type: ignore[attr-defined]
        shop = shop_of(conn, w.people[MERCHANT].id)
    assert shop is not None
    return shop.slug


def new_key(_: World, __: str) -> dict[str, str]:
    return {"public_key": b64(SigningKey.generate().public_key), "label": "matrix"}


@dataclass(frozen=True)
class Answer:
    """What an allowed caller must get: a status, and for a refusal its stable `error`
    code (JSON) or a piece of its English message (`says`, for a page)."""

    status: int
    error: str | None = None
    says: str | None = None


def answering(
    callers: Iterable[str], status: int, error: str = "", says: str = ""
) -> dict[str, Answer]:
    """The same expected answer for each of `callers`."""
    return {c: Answer(status, error or None, says or None) for c in callers}


@dataclass(frozen=True)
class Rule:
    """Who may call a route, and a plausible request: a JSON `body` or a `form`, `query`
    parameters, and values for path parameters (defaults in PATH_VALUES; `caller_path` for
    those that depend on the caller, such as its own key). `answers` are the domain
    refusals some allowed callers must get with this data instead of the success."""

    allowed: frozenset[str]
    body: Callable[[World, str], Any] | None = None
    form: Callable[[World, str], dict[str, str]] | None = None
    query: Callable[[World, str], dict[str, Any]] | None = None
    path: dict[str, Callable[[World], Any]] = field(default_factory=dict)
    caller_path: dict[str, Callable[[World, str], Any]] = field(default_factory=dict)
    answers: dict[str, Answer] = field(default_factory=dict)
    # Refused callers may get 404: the route does not reveal what exists (receipts).
    hides: bool = False
    ends_session: bool = False


PATH_VALUES: dict[str, Callable[[World], Any]] = {
    "key_id": lambda w: "AAAAAAAAAAAAAAAA",
    "token_id": lambda w: UNKNOWN_ID,
    "transfer_id": lambda w: UNKNOWN_ID,
    "member_id": lambda w: w.victim.id,
    "payment_intent": lambda w: "pi_unknown0000",
    "reconversion_id": lambda w: UNKNOWN_ID,
    "loan_id": lambda w: UNKNOWN_ID,
    "invoice_id": lambda w: "unknowninvoice1",
    "code": lambda w: "UNKNOWN2",
    "kind": lambda w: "png",
    "device_id": lambda w: UNKNOWN_ID,
}
RECEIPT = {"transfer_id": lambda w: w.transfer}
OPERATORS = frozenset({OFFICE, TREASURER, ADMIN})
# Stripe has no keys on the test node: card payments are refused as the node documents.
NO_STRIPE = "card_topup_unavailable"

TABLE: dict[tuple[str, str], Rule] = {
    # -- the node -------------------------------------------------------------------------
    ("GET", "/healthz"): Rule(EVERYONE),
    ("GET", "/api/v1/node"): Rule(EVERYONE),
    ("GET", "/api/v1/checkpoint"): Rule(EVERYONE),
    ("GET", "/api/v1/checkpoints"): Rule(EVERYONE, query=lambda w, c: {"limit": 5}),
    ("GET", "/api/v1/checkpoints/{tree_size}"): Rule(
        EVERYONE, path={"tree_size": lambda w: w.checkpoint_size}
    ),
    ("GET", "/api/v1/log/consistency"): Rule(EVERYONE, query=lambda w, c: {"from": 1, "to": 1}),
    ("GET", "/api/v1/plugins"): Rule(PEOPLE),
    ("GET", "/plugins"): Rule(PEOPLE),
    # -- the tool library, a stranger's plugin (tests/plugin_example) ------------------------
    ("POST", "/api/v1/tools/loans"): Rule(
        PASSWORD_HOLDERS, body=lambda w, c: {"tool": "Bêche", "deposit": 500}
    ),
    ("GET", "/api/v1/tools/loans"): Rule(HOLDERS),
    ("POST", "/api/v1/tools/loans/{loan_id}/deposit"): Rule(
        HOLDERS, body=World.payment, answers=answering(HOLDERS, 404, "unknown_loan")
    ),
    ("POST", "/api/v1/tools/loans/{loan_id}/return"): Rule(
        NOBODY_BUT({ADMIN}), answers=answering({ADMIN}, 404, "unknown_loan")
    ),
    ("POST", "/api/v1/tools/loans/{loan_id}/lost"): Rule(
        NOBODY_BUT({ADMIN}), answers=answering({ADMIN}, 409, "no_keeper")
    ),
    ("GET", "/tools"): Rule(HOLDERS),
    # -- joining, sessions, tokens ----------------------------------------------------------
    ("POST", "/api/v1/members"): Rule(
        PEOPLE,
        body=lambda w, c: {
            "display_name": "New",
            "email": f"{w.unique('new')}@village.test",
            "password": PASSWORD,
        },
    ),
    ("POST", "/api/v1/session"): Rule(
        PEOPLE,
        body=lambda w, c: {"email": w.victim.member["email"], "password": PASSWORD},
    ),
    ("DELETE", "/api/v1/session"): Rule(LOGGED_IN, ends_session=True),
    ("GET", "/api/v1/me"): Rule(LOGGED_IN),
    ("GET", "/api/v1/me/tokens"): Rule(LOGGED_IN),
    ("POST", "/api/v1/me/tokens"): Rule(
        PASSWORD_HOLDERS, body=lambda w, c: {"scope": "wallet", "label": "matrix"}
    ),
    ("DELETE", "/api/v1/me/tokens/{token_id}"): Rule(
        LOGGED_IN,
        # Each its own token; operators (who make none) try the resident's.
        caller_path={"token_id": lambda w, c: w.spare_tokens.get(c, w.spare_tokens[RESIDENT])},
        answers=answering(OPERATORS, 404, "unknown_token"),
    ),
    # -- one's account: password, sessions, reset links ---------------------------------------
    ("POST", "/api/v1/me/password"): Rule(
        PASSWORD_PEOPLE,  # the same password again: the caller's session stays
        body=lambda w, c: {"current_password": PASSWORD, "new_password": PASSWORD},
    ),
    ("GET", "/api/v1/me/sessions"): Rule(PASSWORD_PEOPLE),
    ("DELETE", "/api/v1/me/sessions/{session_id}"): Rule(
        PASSWORD_PEOPLE,
        path={"session_id": lambda w: NO_SESSION},
        answers=answering(PASSWORD_PEOPLE, 404, "unknown_session"),
    ),
    ("DELETE", "/api/v1/me/sessions"): Rule(PASSWORD_PEOPLE),
    ("POST", "/api/v1/password-resets"): Rule(
        PEOPLE,  # the test node sends no mail: resets are made at the office
        body=lambda w, c: {"email": w.victim.member["email"]},
        answers=answering(PEOPLE, 409, "resets_at_office"),
    ),
    ("POST", "/api/v1/password-resets/{token}"): Rule(
        PEOPLE,  # whoever holds a link; an unknown one is refused alike
        body=lambda w, c: {"password": PASSWORD},
        path={"token": lambda w: NO_RESET},
        answers=answering(PEOPLE, 404, "reset_link_unknown"),
    ),
    ("POST", "/api/v1/members/{member_id}/password-reset-links"): Rule(NOBODY_BUT({OFFICE, ADMIN})),
    ("GET", "/account"): Rule(PASSWORD_PEOPLE),
    ("POST", "/account/password"): Rule(
        PASSWORD_PEOPLE,
        form=lambda w, c: {
            "current_password": PASSWORD,
            "new_password": PASSWORD,
            "new_password_again": PASSWORD,
        },
    ),
    ("POST", "/account/sessions/{session_id}/end"): Rule(
        PASSWORD_PEOPLE,
        form=lambda w, c: {},
        path={"session_id": lambda w: NO_SESSION},
        answers=answering(PASSWORD_PEOPLE, 404, says="no open session"),
    ),
    ("POST", "/account/sessions/end-others"): Rule(PASSWORD_PEOPLE, form=lambda w, c: {}),
    ("GET", "/password/forgot"): Rule(PEOPLE),
    ("POST", "/password/forgot"): Rule(
        PEOPLE,
        form=lambda w, c: {"email": w.victim.member["email"]},
        answers=answering(PEOPLE, 409, says="sends no mail"),
    ),
    ("GET", "/password/reset/{token}"): Rule(
        PEOPLE,
        path={"token": lambda w: NO_RESET},
        answers=answering(PEOPLE, 404, says="not known here"),
    ),
    ("POST", "/password/reset/{token}"): Rule(
        PEOPLE,
        form=lambda w, c: {"password": PASSWORD, "password_again": PASSWORD},
        path={"token": lambda w: NO_RESET},
        answers=answering(PEOPLE, 404, says="not known here"),
    ),
    ("POST", "/account/reset-links"): Rule(
        NOBODY_BUT({OFFICE, ADMIN}),
        form=lambda w, c: {"member": w.victim.id},
        answers=answering({OFFICE, ADMIN}, 200),  # the link is shown on the answer
    ),
    # -- keys -----------------------------------------------------------------------------
    ("GET", "/api/v1/me/keys"): Rule(HOLDERS),
    ("POST", "/api/v1/me/keys"): Rule(PASSWORD_HOLDERS, body=new_key),
    ("DELETE", "/api/v1/me/keys/{key_id}"): Rule(
        HOLDERS,  # each its own spare key; the others try someone else's
        caller_path={"key_id": lambda w, c: w.spare_keys.get(c, w.spare_keys[MERCHANT])},
    ),
    ("POST", "/api/v1/members/{member_id}/keys/recover"): Rule(
        NOBODY_BUT({OFFICE, ADMIN}), body=new_key
    ),
    # -- the wallet -----------------------------------------------------------------------
    ("GET", "/api/v1/wallet"): Rule(HOLDERS),
    ("GET", "/api/v1/wallet/history"): Rule(HOLDERS, query=lambda w, c: {"limit": 5}),
    ("POST", "/api/v1/transfers"): Rule(HOLDERS, body=World.payment),
    ("GET", "/api/v1/transfers"): Rule(
        HOLDERS,  # each its own order's id; the others try the resident's
        query=lambda w, c: {"client_id": w.client_ids.get(c, w.client_ids[RESIDENT])},
    ),
    ("GET", "/api/v1/transfers/{transfer_id}/receipt"): Rule(
        NOBODY_BUT({RESIDENT, MERCHANT, WALLET_TOKEN, TREASURER, ADMIN}), path=RECEIPT, hides=True
    ),
    ("GET", "/api/v1/pos/payments"): Rule(NOBODY_BUT({POS_TOKEN, COUNTER_SESSION})),
    # -- the counter: the shop's side (signed in, or its point-of-sale token) -------------
    ("POST", "/api/v1/pos/invoices"): Rule(COUNTER, body=lambda w, c: {"amount": 100}),
    ("GET", "/api/v1/pos/invoices/{invoice_id}"): Rule(
        COUNTER, answers=answering(COUNTER, 404, "unknown_invoice")
    ),
    ("POST", "/api/v1/pos/invoices/{invoice_id}/cancel"): Rule(
        COUNTER, answers=answering(COUNTER, 404, "unknown_invoice")
    ),
    ("POST", "/api/v1/pos/refunds"): Rule(COUNTER, body=lambda w, c: w.refund()),
    ("GET", "/api/v1/pos/day"): Rule(COUNTER),
    ("GET", "/api/v1/pos/day.csv"): Rule(COUNTER),
    ("GET", "/api/v1/pos/sticker.{kind}"): Rule(COUNTER),
    ("GET", "/api/v1/pos/events"): Rule(COUNTER, query=lambda w, c: {"wait": 0}),
    ("GET", "/api/v1/pos/authorisations/{code}"): Rule(
        COUNTER, answers=answering(COUNTER, 404, "unknown_code")
    ),
    ("POST", "/api/v1/pos/collections"): Rule(
        COUNTER,
        body=lambda w, c: w.collection(),
        answers=answering(COUNTER, 422, "bad_authorisation"),
    ),
    ("GET", "/pos"): Rule(AT_THE_TILL),
    ("GET", "/pos/day"): Rule(AT_THE_TILL),
    ("GET", "/pos/sticker"): Rule(AT_THE_TILL),
    ("GET", "/pos/invoices/{invoice_id}"): Rule(
        AT_THE_TILL, answers=answering(AT_THE_TILL, 404, says="no such invoice")
    ),
    ("GET", "/pos/invoices/{invoice_id}/qr.svg"): Rule(
        AT_THE_TILL, answers=answering(AT_THE_TILL, 404, says="no such invoice")
    ),
    # -- the counter's devices: paired by the merchant's password, each by its code ----------
    ("GET", "/api/v1/pos/devices"): Rule(NOBODY_BUT({MERCHANT})),
    ("POST", "/api/v1/pos/devices"): Rule(
        NOBODY_BUT({MERCHANT}), body=lambda w, c: {"label": "Caisse matrice"}
    ),
    ("DELETE", "/api/v1/pos/devices/{device_id}"): Rule(
        NOBODY_BUT({MERCHANT}), answers=answering({MERCHANT}, 404, "unknown_counter_device")
    ),
    ("POST", "/api/v1/pos/pair"): Rule(
        EVERYONE,  # whoever holds a code; an unknown one is refused alike
        body=lambda w, c: {"code": "AAAAA-BBBBB", "public_key": new_key(w, c)["public_key"]},
        answers=answering(EVERYONE, 404, "unknown_pairing_code"),
    ),
    ("GET", "/pos/devices"): Rule(NOBODY_BUT({MERCHANT})),
    ("POST", "/pos/devices"): Rule(
        NOBODY_BUT({MERCHANT}),
        form=lambda w, c: {"label": "Caisse matrice"},
        answers=answering({MERCHANT}, 200),  # the code is shown on the answer, once
    ),
    ("POST", "/pos/devices/{device_id}/remove"): Rule(
        NOBODY_BUT({MERCHANT}),
        form=lambda w, c: {},
        answers=answering({MERCHANT}, 404, says="no such counter device"),
    ),
    ("GET", "/pos/pair"): Rule(EVERYONE),
    # -- the counter: the customer's side -----------------------------------------------------
    ("GET", "/api/v1/pay/link"): Rule(
        HOLDERS,
        query=lambda w, c: {"m": w.people[MERCHANT].id, "s": "x"},
        answers=answering(HOLDERS, 400, "bad_link"),
    ),
    ("POST", "/api/v1/pay/invoices/{invoice_id}"): Rule(
        HOLDERS,
        body=lambda w, c: w.payment(c),
        answers=answering(HOLDERS, 404, "unknown_invoice"),
    ),
    ("POST", "/api/v1/pay/shops/{merchant_id}"): Rule(
        HOLDERS,
        body=lambda w, c: w.payment(c),
        path={"merchant_id": lambda w: w.people[MERCHANT].id},
        answers=answering({MERCHANT}, 422, "own_shop"),
    ),
    ("POST", "/api/v1/pay/authorisations"): Rule(HOLDERS, body=lambda w, c: w.authorisation(c)),
    ("GET", "/api/v1/pay/authorisations/{code}"): Rule(
        HOLDERS, answers=answering(HOLDERS, 404, "unknown_code")
    ),
    ("GET", "/api/v1/pay/allowance"): Rule(HOLDERS),
    ("POST", "/api/v1/pay/allowance"): Rule(HOLDERS, body=lambda w, c: w.allowance(c)),
    ("POST", "/api/v1/pay/allowance/certificate"): Rule(
        HOLDERS,
        query=lambda w, c: {"key": w.payer(c).key.key_id},  # type: ignore[union-attr]
    ),
    ("POST", "/api/v1/pay/allowance/release"): Rule(
        HOLDERS, answers=answering(HOLDERS, 409, "certificate_live")
    ),
    ("GET", "/pay"): Rule(
        HOLDERS,
        query=lambda w, c: {"m": w.people[MERCHANT].id, "s": "x"},
        answers=answering(HOLDERS, 400, says="incomplete or damaged"),
    ),
    ("GET", "/pay/code"): Rule(HOLDERS),
    ("GET", "/pay/offline"): Rule(HOLDERS),
    ("GET", "/sw.js"): Rule(EVERYONE),  # a script: it keeps pages only for who may see them
    ("GET", "/pay/authorisations/{code}/qr.svg"): Rule(
        HOLDERS, answers=answering(HOLDERS, 404, says="No payment code")
    ),
    ("GET", "/c/{code}"): Rule(PEOPLE | {COUNTER_SESSION}, answers=answering(AT_THE_TILL, 303)),
    ("POST", "/api/v1/qr/decode"): Rule(
        LOGGED_IN | {COUNTER_SESSION},
        answers=answering(LOGGED_IN | {COUNTER_SESSION}, 415, "unsupported_image_type"),
    ),  # Rule sends JSON or form bodies: not a picture
    ("GET", "/scan"): Rule(LOGGED_IN | {COUNTER_SESSION}),
    # -- finding shops, and their approval -------------------------------------------------------
    ("GET", "/api/v1/payees"): Rule(HOLDERS, query=lambda w, c: {"q": "marchand"}),
    ("GET", "/shops/{slug}"): Rule(PEOPLE, path={"slug": lambda w: shop_slug(w)}),
    ("GET", "/admin/merchants"): Rule(NOBODY_BUT({ADMIN})),
    ("POST", "/admin/merchants/{member_id}"): Rule(
        NOBODY_BUT({ADMIN}),
        form=lambda w, c: {"decision": "approve"},
        path={"member_id": lambda w: w.people[MERCHANT].id},
    ),
    # -- paper notes --------------------------------------------------------------------------
    ("GET", "/api/v1/notes/series"): Rule(NOBODY_BUT({TREASURER})),
    ("POST", "/api/v1/notes/series"): Rule(
        NOBODY_BUT({TREASURER}),
        body=lambda w, c: {"series": f"M{next(_serial)}", "denomination": 100, "count": 2},
    ),
    ("GET", "/api/v1/notes/series/{series}/sheet.pdf"): Rule(
        NOBODY_BUT({TREASURER}),
        path={"series": lambda w: "NONE"},
        answers=answering({TREASURER}, 404, "unknown_note_series"),
    ),
    ("POST", "/api/v1/notes/dispatches"): Rule(
        NOBODY_BUT({TREASURER}),
        body=lambda w, c: {"series": "NONE", "first": 1, "last": 1, "office": "mairie"},
        answers=answering({TREASURER}, 404, "unknown_note_series"),
    ),
    ("POST", "/api/v1/notes/voids"): Rule(
        NOBODY_BUT({TREASURER}),
        body=lambda w, c: {"series": "NONE", "first": 1, "last": 1, "reason": "lost"},
        answers=answering({TREASURER}, 404, "unknown_note_series"),
    ),
    ("GET", "/api/v1/notes/office"): Rule(NOBODY_BUT({OFFICE})),
    ("POST", "/api/v1/notes/sales"): Rule(
        NOBODY_BUT({OFFICE}),
        body=lambda w, c: {"series": "NONE", "first": 1, "last": 1},
        answers=answering({OFFICE}, 404, "unknown_note_series"),
    ),
    ("POST", "/api/v1/notes/cash-deposits"): Rule(
        NOBODY_BUT({OFFICE}),
        body=lambda w, c: {"id": w.unique("paper"), "amount": 100, "slip_ref": "S-1"},
        answers=answering({OFFICE}, 409, "note_till_short"),
    ),
    ("POST", "/api/v1/notes/scan"): Rule(
        EVERYONE,
        body=lambda w, c: {"link": ELSEWHERE},
        answers=answering(EVERYONE, 400, "note_elsewhere"),
    ),
    ("GET", "/api/v1/notes/{series}/{serial}"): Rule(
        EVERYONE,
        path={"series": lambda w: "A", "serial": lambda w: "1"},
        answers=answering(EVERYONE, 400, "note_link_damaged"),
    ),
    ("POST", "/api/v1/notes/deposits"): Rule(
        NOBODY_BUT({MERCHANT}),
        body=lambda w, c: {"link": ELSEWHERE, **w.payment(c)},
        answers=answering({MERCHANT}, 400, "note_elsewhere"),
    ),
    ("GET", "/n/{series}/{serial}"): Rule(
        PEOPLE,
        path={"series": lambda w: "A", "serial": lambda w: "1"},
        answers=answering(PEOPLE, 400, says="incomplete or damaged"),
    ),
    ("GET", "/notes"): Rule(NOBODY_BUT({TREASURER})),
    ("POST", "/notes"): Rule(
        NOBODY_BUT({TREASURER}),
        form=lambda w, c: {
            "action": "create",
            "series": f"P{next(_serial)}",
            "denomination": "100",
            "count": "2",
        },
    ),
    ("GET", "/notes/office"): Rule(NOBODY_BUT({OFFICE})),
    ("POST", "/notes/office"): Rule(
        NOBODY_BUT({OFFICE}),
        form=lambda w, c: {
            "action": "deposit",
            "id": w.unique("paper"),
            "amount": "1",
            "slip_ref": "S-1",
        },
        answers=answering({OFFICE}, 409, says="from notes sold and not yet deposited"),
    ),
    # -- administration -------------------------------------------------------------------
    ("POST", "/api/v1/admin/operators"): Rule(
        NOBODY_BUT({ADMIN}),
        body=lambda w, c: {
            "display_name": "Operator",
            "email": f"{w.unique('op')}@village.test",
            "password": PASSWORD,
            "role": "treasurer",
        },
    ),
    ("PUT", "/api/v1/members/{member_id}/membership"): Rule(
        NOBODY_BUT({ADMIN}), body=lambda w, c: {"until": "2031-12-31"}
    ),
    ("GET", "/api/v1/admin/members"): Rule(NOBODY_BUT({ADMIN}), query=lambda w, c: {"q": "vic"}),
    ("GET", "/api/v1/members/{member_id}/keys"): Rule(NOBODY_BUT({OFFICE, ADMIN})),
    # -- card top-ups ---------------------------------------------------------------------
    ("POST", "/api/v1/topups/card"): Rule(
        HOLDERS, body=lambda w, c: {"amount": 2_000}, answers=answering(HOLDERS, 409, NO_STRIPE)
    ),
    ("GET", "/api/v1/topups/card"): Rule(HOLDERS),
    ("GET", "/api/v1/topups/card/{payment_intent}"): Rule(
        HOLDERS, answers=answering(HOLDERS, 404, "unknown_card_payment")
    ),
    # Authenticated by Stripe's signature, not by who calls.
    ("POST", "/stripe/webhook"): Rule(
        EVERYONE, body=lambda w, c: {"id": "evt_x"}, answers=answering(EVERYONE, 409, NO_STRIPE)
    ),
    # -- the exchange office and the treasury ---------------------------------------------
    ("GET", "/api/v1/office"): Rule(NOBODY_BUT({OFFICE})),
    ("POST", "/api/v1/office/cash-ins"): Rule(
        NOBODY_BUT({OFFICE}),
        body=lambda w, c: {
            "id": w.unique("cash"),
            "member": w.people[RESIDENT].id,
            "amount": 1_000,
        },
    ),
    ("POST", "/api/v1/office/deposits"): Rule(
        NOBODY_BUT({OFFICE}),
        body=lambda w, c: {"id": w.unique("dep"), "amount": 100, "slip_ref": "SLIP-1"},
    ),
    ("GET", "/api/v1/treasury/offices"): Rule(NOBODY_BUT({TREASURER})),
    ("POST", "/api/v1/treasury/deposits/{transfer_id}/reconciled"): Rule(
        NOBODY_BUT({TREASURER}),
        body=lambda w, c: {"bank_ref": "VIR-1"},
        path={"transfer_id": lambda w: w.deposits[0]},
    ),
    # -- card shortfalls (the treasurer) ---------------------------------------------------
    ("GET", "/api/v1/treasury/card-shortfalls"): Rule(NOBODY_BUT({TREASURER})),
    ("POST", "/api/v1/treasury/card-shortfalls/{payment_intent}/take-backs"): Rule(
        NOBODY_BUT({TREASURER}),
        body=lambda w, c: {"id": w.unique("take")},
        answers=answering({TREASURER}, 404, "unknown_card_payment"),  # no card payments
    ),
    ("POST", "/api/v1/treasury/card-shortfalls/{payment_intent}/write-off"): Rule(
        NOBODY_BUT({TREASURER}),
        body=lambda w, c: {"id": w.unique("off"), "reason": "Gone"},
        answers=answering({TREASURER}, 404, "unknown_card_payment"),
    ),
    ("GET", "/api/v1/treasury/frozen-wallets"): Rule(NOBODY_BUT({TREASURER})),
    ("POST", "/api/v1/treasury/frozen-wallets/{member_id}/unfrozen"): Rule(
        NOBODY_BUT({TREASURER}),
        body=lambda w, c: {"id": w.unique("thaw"), "reason": "Paid"},
        answers=answering({TREASURER}, 409, "not_frozen"),  # only card disputes freeze one
    ),
    ("GET", "/api/v1/treasury/card-settlements"): Rule(NOBODY_BUT({TREASURER})),
    # -- reconversions (merchants only: residents_may_reconvert is off by default) --------
    ("GET", "/api/v1/reconversions/quote"): Rule(
        NOBODY_BUT({MERCHANT}), query=lambda w, c: {"amount": 1_000}
    ),
    ("POST", "/api/v1/reconversions"): Rule(NOBODY_BUT({MERCHANT}), body=World.redemption),
    ("GET", "/api/v1/reconversions"): Rule(HOLDERS),
    ("GET", "/api/v1/treasury/reconversions"): Rule(NOBODY_BUT({TREASURER})),
    ("POST", "/api/v1/treasury/reconversions/{reconversion_id}/paid"): Rule(
        NOBODY_BUT({TREASURER}),
        body=lambda w, c: {"bank_ref": "VIR-2"},
        path={"reconversion_id": lambda w: w.reconversions[0]},
    ),
    ("POST", "/api/v1/treasury/reconversions/{reconversion_id}/rejected"): Rule(
        NOBODY_BUT({TREASURER}),
        body=lambda w, c: {"reason": "Not this month"},
        path={"reconversion_id": lambda w: w.reconversions[1]},
    ),
    # -- pages ----------------------------------------------------------------------------
    ("GET", "/"): Rule(PEOPLE),
    # A member who joined already is sent on to their wallet (operators to the home page).
    ("GET", "/join"): Rule(PEOPLE, answers=answering(LOGGED_IN, 303)),
    ("POST", "/join"): Rule(
        PEOPLE,
        form=lambda w, c: {
            "display_name": "Visitor",
            "email": f"{w.unique('visitor')}@village.test",
            "password": PASSWORD,
            "role": "resident",
        },
    ),
    ("GET", "/login"): Rule(PEOPLE),
    ("POST", "/login"): Rule(
        PEOPLE, form=lambda w, c: {"email": w.victim.member["email"], "password": PASSWORD}
    ),
    ("POST", "/logout"): Rule(PEOPLE | {COUNTER_SESSION}, form=lambda w, c: {}, ends_session=True),
    ("GET", "/wallet"): Rule(HOLDERS),
    ("GET", "/wallet/receipts/{transfer_id}"): Rule(
        NOBODY_BUT({RESIDENT, MERCHANT, WALLET_TOKEN}), path=RECEIPT, hides=True
    ),
    ("GET", "/send"): Rule(HOLDERS),
    ("GET", "/keys"): Rule(HOLDERS),
    ("GET", "/topup"): Rule(HOLDERS),
    ("POST", "/topup/card"): Rule(
        HOLDERS,
        form=lambda w, c: {"amount": "20"},
        answers=answering(HOLDERS, 409, says="Card top-ups are not available yet"),
    ),
    ("GET", "/topup/card/checkout"): Rule(
        HOLDERS,
        query=lambda w, c: {"session_id": "cs_x"},
        answers=answering(HOLDERS, 409, says="Card top-ups are not available yet"),
    ),
    ("GET", "/topup/card/{payment_intent}"): Rule(
        HOLDERS, answers=answering(HOLDERS, 404, says="no card payment")
    ),
    ("GET", "/office"): Rule(NOBODY_BUT({OFFICE})),
    ("POST", "/office"): Rule(
        NOBODY_BUT({OFFICE}),
        form=lambda w, c: {
            "action": "cash-in",
            "id": w.unique("cash"),
            "member": w.people[RESIDENT].id,
            "amount": "5",
        },
    ),
    ("GET", "/treasurer/cards"): Rule(NOBODY_BUT({TREASURER})),
    ("POST", "/treasurer/cards"): Rule(
        NOBODY_BUT({TREASURER}),
        form=lambda w, c: {
            "action": "take-back",
            "id": w.unique("take"),
            "payment_intent": "pi_unknown0000",
        },
        answers=answering({TREASURER}, 404, says="no card payment"),
    ),
    ("GET", "/treasurer/offices"): Rule(NOBODY_BUT({TREASURER})),
    ("POST", "/treasurer/offices"): Rule(
        NOBODY_BUT({TREASURER}),
        form=lambda w, c: {"transfer_id": str(w.deposits[1]), "bank_ref": "VIR-3"},
    ),
    ("GET", "/reconversion"): Rule(NOBODY_BUT({MERCHANT})),
    ("GET", "/admin/members"): Rule(NOBODY_BUT({ADMIN}), query=lambda w, c: {"q": "vic"}),
    ("GET", "/admin/members/{member_id}"): Rule(NOBODY_BUT({ADMIN})),
    ("POST", "/admin/members/{member_id}"): Rule(
        NOBODY_BUT({ADMIN}), form=lambda w, c: {"until": "2031-12-31"}
    ),
    ("GET", "/admin/operators"): Rule(NOBODY_BUT({ADMIN})),
    ("GET", "/admin/cards"): Rule(NOBODY_BUT({ADMIN})),
    ("POST", "/admin/operators"): Rule(
        NOBODY_BUT({ADMIN}),
        form=lambda w, c: {
            "display_name": "Operator",
            "email": f"{w.unique('page-op')}@village.test",
            "password": PASSWORD,
            "role": "treasurer",
        },
    ),
    ("GET", "/admin/recovery"): Rule(
        NOBODY_BUT({OFFICE, ADMIN}), query=lambda w, c: {"member": w.victim.id}
    ),
    ("POST", "/admin/recovery"): Rule(
        NOBODY_BUT({OFFICE, ADMIN}),
        form=lambda w, c: {
            "member": w.victim.id,
            "identity_checked": "yes",
            **new_key(w, c),
        },
    ),
    ("GET", "/treasurer"): Rule(NOBODY_BUT({TREASURER})),
    ("POST", "/treasurer"): Rule(
        NOBODY_BUT({TREASURER}),
        form=lambda w, c: {
            "reconversion_id": str(w.reconversions[2]),
            "decision": "rejected",
            "reason": "Not this month",
        },
    ),
}
# The civic plugins and the treasurer's seat keep their rows beside their own tests, in the
# same shape.
for rows in (
    authz_amap,
    authz_crowdfunding,
    authz_audit,
    authz_exports,
    authz_payouts,
    authz_reconciliation,
    authz_reports,
    authz_transparency,
):
    TABLE.update(rows.rules())


def app_routes(site: TestClient) -> Iterator[tuple[str, str, str]]:
    """(method, path, name) of every route the app serves, included routers too."""
    for route in iter_route_contexts(site.app.routes):  # type: ignore[attr-defined]
        path = route.path or ""
        if path.startswith(SKIPPED):
            continue
        for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
            yield method, path, route.name or "?"


def success(site: TestClient, method: str, path: str, rule: Rule) -> int:
    """The status a route answers on success: 303 for a form, else the one it declares."""
    if rule.form is not None:
        return 303
    for route in iter_route_contexts(site.app.routes):  # type: ignore[attr-defined]
        if route.path == path and method in (route.methods or ()):
            return int(getattr(route, "status_code", None) or 200)
    raise AssertionError(f"no route {method} {path}")


# -- the callers -----------------------------------------------------------------------------


@dataclass
class Caller:
    name: str
    person: Person | None = None  # logged in with a session
    token: str | None = None  # or a bearer token

    def headers(self) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token}"}
        if self.person is None:  # a visitor who loaded a page: the anonymous CSRF cookie
            return {"Cookie": "sou_csrf=anonymous-csrf", "X-CSRF-Token": "anonymous-csrf"}
        session = self.person.client.cookies.get("sou_session")
        return {"Cookie": f"sou_session={session}", "X-CSRF-Token": self.person.csrf}


def created(answer: Any) -> Any:
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.fixture
def world(site: TestClient) -> World:
    resident, merchant = join(site, "Resident"), join(site, "Marchand", "merchant")
    victim = join(site, "Victim")
    for person in (resident, merchant):
        fund(site, person, 50_000)
    people = {RESIDENT: resident, MERCHANT: merchant}
    for role in (OFFICE, TREASURER, ADMIN):
        people[role] = operator(site, role)
    tokens = {
        WALLET_TOKEN: resident.post(
            "/api/v1/me/tokens", json={"scope": "wallet", "label": "script"}
        ).json()["token"],
        POS_TOKEN: merchant.post(
            "/api/v1/me/tokens", json={"scope": "pos", "label": "counter"}
        ).json()["token"],
    }
    payment = resident.order(to=merchant.account, amount=500)
    paid = resident.post("/api/v1/transfers", json=payment)
    assert paid.status_code == 201, paid.text
    quote = merchant.get("/api/v1/reconversions/quote", params={"amount": 1_000})
    assert quote.status_code == 200, quote.text
    world = World(site, people, tokens, victim, paid.json()["transfer_id"], quote.json()["fee"])
    world.client_ids = dict.fromkeys((RESIDENT, WALLET_TOKEN), payment["order"]["id"])
    # A device key and an API token for each holder to revoke (a wallet token revokes
    # another of the resident's), the POS token aiming at one of the merchant's.
    owners = {RESIDENT: resident, WALLET_TOKEN: resident, MERCHANT: merchant, POS_TOKEN: merchant}
    for caller, owner in owners.items():
        key = created(owner.post("/api/v1/me/keys", json=new_key(world, caller)))
        token = created(owner.post("/api/v1/me/tokens", json={"scope": "wallet", "label": "x"}))
        world.spare_keys[caller], world.spare_tokens[caller] = key["key_id"], token["id"]
    # Cash the office took to the bank (which backs reconversions), to be reconciled; and
    # reconversions waiting for the treasurer.
    for n in range(2):
        deposit = {"id": world.unique("dep"), "amount": 20_000, "slip_ref": f"SLIP-{n}"}
        world.deposits.append(
            created(people[OFFICE].post("/api/v1/office/deposits", json=deposit))["transfer_id"]
        )
    for _ in range(3):
        redemption = world.redemption(MERCHANT)
        world.client_ids[MERCHANT] = redemption["order"]["id"]
        asked = merchant.post("/api/v1/reconversions", json=redemption)
        world.reconversions.append(created(asked)["id"])
    # The merchant's shop is approved, and both hold an offline allowance with a live
    # certificate (so that giving it back is refused, whatever the routes' order).
    from members.shops import decide

    with site.app.state.node.engine.begin() as conn:  # type: ignore[attr-defined]
        decide(conn, merchant.id, "approved", None, 1)
    for caller in (RESIDENT, MERCHANT):
        held = world.payer(caller).post("/api/v1/pay/allowance", json=world.allowance(caller))
        created(held)
    people[COUNTER_SESSION] = paired_device(site, merchant)
    wait_sealed(site)
    world.checkpoint_size = site.get("/api/v1/checkpoints").json()["items"][0]["tree_size"]
    return world


def paired_device(site: TestClient, merchant: Person) -> Person:
    """A tablet paired with the merchant's counter: its session, and its counter key."""
    from tests.people import new_client

    code = created(merchant.post("/api/v1/pos/devices", json={"label": "Caisse"}))["code"]
    key = SigningKey.generate()
    client = new_client(site)
    paired = created(
        client.post("/api/v1/pos/pair", json={"code": code, "public_key": b64(key.public_key)})
    )
    return Person(client, {"id": paired["merchant"]}, csrf=paired["csrf"], key=key)


def callers(world: World) -> dict[str, Caller]:
    found = {name: Caller(name, person=world.people[name]) for name in world.people}
    found[ANONYMOUS] = Caller(ANONYMOUS)
    for name, token in world.tokens.items():
        found[name] = Caller(name, token=token)
    return found


def call(world: World, caller: Caller, method: str, path: str, rule: Rule) -> Any:
    values = {**PATH_VALUES, **rule.path}

    def value(name: str) -> str:
        if name in rule.caller_path:
            return str(rule.caller_path[name](world, caller.name))
        return str(values[name](world))

    url = re.sub(r"\{(\w+)\}", lambda m: value(m.group(1)), path)
    headers = {**caller.headers(), "Accept-Language": "en"}  # `Answer.says` is English
    kwargs: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    if rule.body is not None:
        kwargs["json"] = rule.body(world, caller.name)
    if rule.form is not None:
        kwargs["data"] = rule.form(world, caller.name)
    if rule.query is not None:
        kwargs["params"] = rule.query(world, caller.name)
    if not path.startswith(("/api/", "/stripe/", "/healthz")):
        kwargs["headers"]["Accept"] = "text/html"
    # A fresh client per request: cookies a response sets never change who the caller is.
    client = TestClient(world.site.app, base_url=str(world.site.base_url))
    return client.request(method, url, **kwargs)


def refused(answer: Any, rule: Rule) -> bool:
    if answer.status_code in (401, 403) or (rule.hides and answer.status_code == 404):
        return True
    location = answer.headers.get("location", "")
    return answer.status_code in (302, 303, 307) and location.startswith("/login")


def answered(answer: Any, expected: Answer, rule: Rule) -> bool:
    """The allowed caller got `expected`: its status, and for a refusal its own reason."""
    if answer.status_code != expected.status or refused(answer, rule):
        return False
    if expected.error is not None:
        is_json = answer.headers.get("content-type", "").startswith("application/json")
        return is_json and answer.json().get("error") == expected.error
    return expected.says is None or expected.says in answer.text


# -- the tests -------------------------------------------------------------------------------


def test_every_route_is_in_the_table(site: TestClient) -> None:
    served = {(method, path) for method, path, _ in app_routes(site)}
    missing = [
        f"{method} {path} ({name})"
        for method, path, name in app_routes(site)
        if (method, path) not in TABLE
    ]
    assert not missing, "routes with no row in the authorisation table: " + ", ".join(missing)
    gone = sorted(set(TABLE) - served)
    assert not gone, f"rows for routes the app no longer serves: {gone}"


def test_each_caller_gets_exactly_the_routes_allowed(world: World) -> None:
    who = callers(world)
    wrong: list[str] = []
    for method, path, name in app_routes(world.site):
        rule = TABLE.get((method, path))
        if rule is None:
            continue  # reported by test_every_route_is_in_the_table
        ok = success(world.site, method, path, rule)
        for caller in CALLERS:
            answer = call(world, who[caller], method, path, rule)
            if caller in rule.allowed:
                expected = rule.answers.get(caller, Answer(ok))
                right, wanted = answered(answer, expected, rule), str(expected)
            else:
                right, wanted = refused(answer, rule), "a refusal"
            if not right:
                wrong.append(
                    f"{method} {path} ({name}) as {caller}: expected {wanted}, got "
                    f"{answer.status_code} {answer.headers.get('location', '')} "
                    f"{answer.text[:120]!r}"
                )
            person = who[caller].person
            if rule.ends_session and person is not None:
                if caller == COUNTER_SESSION:
                    if caller not in rule.allowed:
                        continue  # refused: its session stays
                    tablet = paired_device(world.site, world.people[MERCHANT])  # logged out
                    who[caller] = Caller(caller, person=tablet)
                    world.people[caller] = tablet
                else:
                    person.log_in()  # the next routes need the session again
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong)

"""Schemathesis over the whole OpenAPI of the app: no request, however odd, gets a 5xx, and
every answer (refusals included: status and body) is one the schema documents.

Each operation is fuzzed with data that fits the schema and data that does not, sent by
every kind of caller (a visitor, residents and merchants logged in with a session and its
CSRF token, the operators, a wallet token, a point-of-sale token). Bodies that carry a
signed order are, half of the time, replaced by an order the caller's own device key
signed, with fuzzed fields: so valid payments and reconversions get through too, and the
ledger's checks behind the signature are reached. Deterministic (derandomized). The
operations are dealt out in a few tests, each on a node of its own, so that the cores of a
run (pytest-xdist) share them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from ledger.canonical import b64
from ledger.signing import SigningKey, new_order
from tests.conftest import OPERATORS, PASSWORD
from tests.test_client import fund, member
from wallet_api.client import WalletClient

EXAMPLES = int(os.environ.get("SOU_FUZZ_EXAMPLES", "12"))  # per operation and mode
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    negative_data_rejection,
    status_code_conformance,
]
# Orders that spend a wallet: their bodies are signed by the caller's own key.
SIGNED = {"/api/v1/transfers": "payment", "/api/v1/reconversions": "redemption"}
PARTS = 4  # the tests the operations are dealt out to, as cards are


@pytest.fixture
def node_settings(node_settings: Any) -> Any:
    # Fuzzed logins fail by the thousand from one address; the callers must stay logged in.
    node_settings.login_free_tries = 1_000_000
    node_settings.login_email_ceiling = node_settings.login_address_ceiling = 1_000_000
    return node_settings


@dataclass
class Identity:
    name: str
    wallet: WalletClient | None = None  # logged in with a session (cookie, CSRF token)...
    token: str | None = None  # ...or using a bearer token
    key: SigningKey | None = None  # the device key its orders are signed with
    account: str | None = None
    email: str = ""
    renew: Callable[[], str] | None = None  # a new token, when a fuzzed call revoked it

    def headers(self) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token}"}
        if self.wallet is None or self.wallet.csrf is None:
            return {}
        session = self.wallet.http.cookies.get("sou_session")
        return {"Cookie": f"sou_session={session}", "X-CSRF-Token": self.wallet.csrf}

    def recover(self, answer: Any) -> None:
        """A fuzzed call logged this caller out or revoked its token: get them back."""
        try:
            code = answer.json().get("error")
        except ValueError:
            return
        if code == "login_required" and self.wallet is not None:
            self.wallet.log_in(self.email, PASSWORD)
        elif code == "bad_token" and self.renew is not None:
            self.token = self.renew()


def identities(node: Any, base_url: str) -> tuple[list[Identity], dict[str, list[Any]]]:
    resident = member(httpx.Client(base_url=base_url), "Camille")
    merchant = member(httpx.Client(base_url=base_url), "Boulangerie", "merchant")
    other = member(httpx.Client(base_url=base_url), "Louis")
    for wallet in (resident, merchant):
        fund(node, wallet.account(), 1_000_000)
    paid = resident.pay(merchant.account(), 1_000).transfer_id

    def token_of(wallet: WalletClient, scope: str) -> Callable[[], str]:
        return lambda: wallet.create_token("fuzz", scope).secret

    def person(wallet: WalletClient, name: str) -> Identity:
        me = wallet.me()
        return Identity(name, wallet, None, wallet.key, wallet.account(), str(me["email"]))

    wallet_token, pos_token = token_of(resident, "wallet"), token_of(merchant, "pos")
    found = [
        Identity("anonymous"),
        person(resident, "resident"),
        person(merchant, "merchant"),
        Identity("wallet token", None, wallet_token(), resident.key, resident.account()),
        Identity("pos token", None, pos_token(), renew=pos_token),
    ]
    found[3].renew = wallet_token
    for role, (email, _) in OPERATORS.items():
        operator = WalletClient(http=httpx.Client(base_url=base_url))
        operator.log_in(email, PASSWORD)
        found.append(Identity(role, operator, email=email))
    keys = [k.key_id for k in (resident.key, other.key) if k is not None]
    real = {
        "transfer_id": [paid, 1],
        "member_id": [w.me()["id"] for w in (resident, merchant, other)],
        "key_id": keys,
        "accounts": [merchant.account(), other.account(), resident.account(), "member:x-0000"],
    }
    return found, real


def amounts() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-5, 3_000),
        st.integers(-(2**63), 2**63),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
        st.booleans(),
        st.none(),
    )


def signed_order(data: st.DataObject, who: Identity, kind: str, real: dict[str, Any]) -> Any:
    """An order the caller's key signed: a plausible one half of the time (so that some go
    through), else with its fields fuzzed around plausible values."""
    assert who.key is not None and who.account is not None
    plausible = data.draw(st.booleans())
    fields: dict[str, Any] = {"from": who.account, "currency": "SOU"}
    fields["amount"] = data.draw(st.integers(1, 900) if plausible else amounts())
    if kind == "payment":
        fields["to"] = data.draw(st.sampled_from(real["accounts"][:2]))
    else:
        fields["fee"] = data.draw(st.integers(0, 30) if plausible else amounts())
    node, order_kind = "test.sou.localhost/village", kind
    if not plausible:
        node = data.draw(st.sampled_from([node, "elsewhere/village"]))
        order_kind = data.draw(st.sampled_from([kind, "refund", "topup"]))
        fields["from"] = data.draw(st.sampled_from([who.account, *real["accounts"]]))
        fields["currency"] = data.draw(st.sampled_from(["SOU", "EUR", ""]))
        if kind == "payment":
            fields["to"] = data.draw(st.sampled_from(real["accounts"]) | st.text(max_size=20))
        fields.update(
            data.draw(
                st.dictionaries(
                    st.sampled_from(["memo", "ref", "rule", "cause_fee", "colour", "expires"]),
                    st.integers(-3, 10**10) | st.text(max_size=300),
                    max_size=2,
                )
            )
        )
    order = {**new_order(order_kind, who.key, node), **fields}
    return {"order": order, "sig": b64(who.key.sign_bytes(_canonical_or_empty(order)))}


def _canonical_or_empty(order: dict[str, Any]) -> bytes:
    from ledger.canonical import canonical

    try:
        return canonical(order)
    except ValueError:  # a float or a huge integer: not signable, sent with any signature
        return b""


@pytest.mark.parametrize("part", range(PARTS), ids=lambda n: f"part{n + 1}of{PARTS}")
def test_no_request_gets_a_5xx_or_an_answer_off_the_schema(
    node: Any, live_site: str, part: int
) -> None:
    callers, real = identities(node, live_site)
    # Served by uvicorn, as in production: a crash is a 500 answer, and the schema is the
    # one the node publishes.
    schema = schemathesis.openapi.from_url(f"{live_site}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # The signed orders, fuzzed four times as long, first: dealt to different parts.
    operations.sort(key=lambda operation: operation.path not in SIGNED)
    failures: list[str] = []
    calls = 0
    for operation in operations[part::PARTS]:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES * (4 if operation.path in SIGNED else 1),
                derandomize=True,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: report and go on
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
            def fuzz(case: Any, data: st.DataObject) -> None:
                nonlocal calls
                who = data.draw(st.sampled_from(callers))
                for name, values in real.items():
                    if name in (case.path_parameters or {}) and data.draw(st.booleans()):
                        case.path_parameters[name] = data.draw(st.sampled_from(values))
                kind = SIGNED.get(case.path)
                if kind and who.key is not None and data.draw(st.booleans()):
                    case.body = signed_order(data, who, kind, real)
                calls += 1
                answer = case.call(base_url=live_site, headers=who.headers())
                try:
                    case.validate_response(answer, checks=CHECKS, headers=who.headers())
                except (AssertionError, BaseExceptionGroup) as exc:  # all, not the first
                    found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
                    what = "; ".join(str(e).splitlines()[0] for e in found)
                    failures.append(
                        f"{case.method} {case.path} [{case.meta.generation.mode.value}] "
                        f"as {who.name}: {answer.status_code} {what[:200]}\n"
                        f"    body={case.body!r:.300} path={case.path_parameters} "
                        f"query={case.query} -> {answer.text[:200]!r}"
                    )
                if answer.status_code == 401:
                    who.recover(answer)

            try:
                fuzz()
            except Unsatisfiable:  # nothing to make invalid: no parameters, no body
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert calls > 30 * EXAMPLES // PARTS
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])

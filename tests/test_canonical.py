"""The fast path of `ledger.canonical` gives exactly the bytes of the `rfc8785` library."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import b64, canonical, unb64
from ledger.leaves import key_event_leaf, transfer_leaf

FLAT_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.text(),
    st.text(alphabet=st.characters(max_codepoint=0x7F)),
    st.sampled_from(["\u2028", "\u2029", "\x7f", "\x00", "é", "😀", "\ufeff", '"\\/']),
)


@settings(max_examples=500)
@given(st.dictionaries(st.text(), FLAT_VALUES, max_size=12))
def test_same_bytes_as_rfc8785(obj: dict[str, Any]) -> None:
    try:
        expected = rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        with pytest.raises((ValueError, UnicodeEncodeError)):
            canonical(obj)
        return
    assert canonical(obj) == expected


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.text(max_size=4),
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        ),
        max_size=4,
    )
)
def test_other_values_go_through_the_library(obj: dict[str, Any]) -> None:
    try:
        expected = rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError:
        with pytest.raises(ValueError):
            canonical(obj)
        return
    assert canonical(obj) == expected


ORDERS = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "kind": st.sampled_from(["payment", "refund"]),
        "amount": st.integers(1, 2**53 - 1),
        "memo": st.text(max_size=40),
        "from": st.from_regex(r"member:[a-z0-9]{1,8}", fullmatch=True),
    }
)


@settings(max_examples=200)
@given(
    order=ORDERS,
    transfer_id=st.integers(1, 2**53 - 1),
    created=st.integers(0, 2**53 - 1),
    sig=st.binary(min_size=64, max_size=64),
    legs=st.lists(
        st.tuples(
            st.from_regex(r"(member|reserve|issuance):[a-z0-9-]{1,10}", fullmatch=True),
            st.sampled_from(["SOU", "EUR"]),
            st.integers(-(2**53) + 1, 2**53 - 1),
        ),
        min_size=2,
        max_size=4,
        unique_by=lambda leg: leg[0],
    ),
)
def test_leaves_are_canonical_json(
    order: dict[str, Any],
    transfer_id: int,
    created: int,
    sig: bytes,
    legs: list[tuple[str, str, int]],
) -> None:
    order_json = canonical(order).decode()
    leaf = transfer_leaf(transfer_id, created, order_json, sig, legs)
    assert leaf == rfc8785.dumps(
        {
            "created": created,
            "id": transfer_id,
            "order": order,
            "postings": [list(leg) for leg in sorted(legs)],
            "sig": b64(sig),
            "type": "transfer",
        }
    )
    event_leaf = key_event_leaf(transfer_id, created, order_json, sig)
    assert event_leaf == rfc8785.dumps(
        {"created": created, "event": order, "id": transfer_id, "sig": b64(sig), "type": "key"}
    )


def test_base64url_round_trip_and_strictness() -> None:
    assert unb64(b64(b"\xfb\xff")) == b"\xfb\xff"
    for bad in ("a+b/", "ab=c", "é", "a b"):
        with pytest.raises(ValueError):
            unb64(bad)

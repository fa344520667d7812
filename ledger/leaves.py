"""The bytes of each Merkle log leaf: RFC 8785 canonical JSON of what was accepted.

A transfer leaf is `{"created", "id", "order", "postings", "sig", "type": "transfer"}` and a
key event leaf `{"created", "event", "id", "sig", "type": "key"}`, where `order` and `event`
are the signed objects themselves. Anyone holding a leaf can re-check the signature and the
postings without the node.

The sealer and the audit build these bytes for every transfer, so they are assembled from
parts that are already canonical (the stored order, integers, base64url, account codes of
the chart) instead of re-serialising; tests check the result equals `rfc8785.dumps`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.canonical import b64


def transfer_leaf(
    transfer_id: int,
    created_ms: int,
    order_json: str,
    signature: bytes,
    legs: Iterable[tuple[str, str, int]],
) -> bytes:
    """Leaf bytes of a transfer; `legs` are (account code, currency, amount)."""
    postings = ",".join(
        f'["{code}","{currency}",{amount}]' for code, currency, amount in sorted(legs)
    )
    return (
        f'{{"created":{created_ms},"id":{transfer_id},"order":{order_json},'
        f'"postings":[{postings}],"sig":"{b64(signature)}","type":"transfer"}}'
    ).encode()


def key_event_leaf(event_id: int, created_ms: int, event_json: str, signature: bytes) -> bytes:
    return (
        f'{{"created":{created_ms},"event":{event_json},"id":{event_id},'
        f'"sig":"{b64(signature)}","type":"key"}}'
    ).encode()

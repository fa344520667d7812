"""What the node signs itself: orders in the name of a rule or of an operator's role key,
and key events by the node key; and posting an order through the node's writer.

Every key used here is the one the log registers for its owner (`Node.signing_key`), or
nothing is signed (KeysMismatch).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ledger.errors import LedgerError, NodeBusy
from ledger.operations import NODE
from ledger.posting import Posted
from ledger.service import key_event
from ledger.signing import SignedOrder, new_order

if TYPE_CHECKING:
    from runtime.node import Node


def sign_as(node: Node, owner: str, kind: str, client_id: str, **fields: Any) -> SignedOrder:
    """An order signed by the node (naming the rule) or by an operator's role key."""
    key = node.signing_key(owner)  # the log's key for `owner`, or KeysMismatch
    return key.sign(new_order(kind, key, node.ledger.origin, client_id=client_id, **fields))


def post(node: Node, envelope: SignedOrder) -> Posted:
    """Post through the group-commit poster when it runs (the server), else directly."""
    if node.poster is not None:
        return node.poster.post(envelope)
    return node.ledger.transfer(envelope)


POST_TIMEOUT_S = 60  # a payment not committed by then is answered 503: send it again


async def post_async(node: Node, envelope: SignedOrder) -> Posted:
    """`post` for the event loop: the caller waits for its batch to commit without holding
    a worker thread. The poster's thread settles its future and hands the outcome to this
    loop once; a caller given up (timeout, client gone) drops its own future only."""
    if node.poster is None:
        return await asyncio.to_thread(node.ledger.transfer, envelope)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[Posted] = loop.create_future()
    node.poster.submit(envelope).add_done_callback(
        lambda done: loop.call_soon_threadsafe(_settle, answer, done)
    )
    timer = loop.call_later(POST_TIMEOUT_S, _settle_late, answer)
    try:
        return await answer
    finally:
        timer.cancel()


def _settle(answer: asyncio.Future[Posted], done: Future[Posted]) -> None:
    if answer.done():  # timed out or given up
        return
    error = done.exception()
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(done.result())


def _settle_late(answer: asyncio.Future[Posted]) -> None:
    if not answer.done():  # maybe posted later: the same order sent again says so, once
        answer.set_exception(NodeBusy("the order was not posted in time; send it again"))


def posted_or_existing(node: Node, owner: str, signed: SignedOrder) -> Posted | None:
    """Post an order whose client id names a unique event (a card payment, a cash receipt).
    If the same id was posted before with another nonce, the first one stands: None."""
    try:
        return post(node, signed)
    except LedgerError as exc:
        if exc.code == "idempotency_conflict":
            return None
        raise


def node_key_event(node: Node, action: str, owner: str, public_key: bytes) -> dict[str, Any]:
    """A key event for the node key to sign, once it is found to be the log's node key."""
    signer = node.signing_key(NODE)
    return key_event(
        action, origin=node.ledger.origin, owner=owner, public_key=public_key, signer=signer
    )

"""A small Python client of the wallet API, for a device or a script.

It holds the device's Ed25519 key (made here with PyNaCl: the node never sees the secret),
logs in with email and password (keeping the session cookie and its CSRF token) or uses a
bearer API token, and signs its own payment orders. A retried payment sends the very same
signed order, so the node posts it once. A receipt is checked against the checkpoint signed
by the node's key: a member need not take the node's word that a payment is in the log.
A checkpoint kept (say, printed last month) is proven to be a past state of today's log by
`prove_extends`, and a receipt can be checked against it: the node cannot rewrite history
behind a resident who kept one.

    with WalletClient("https://sou.example.org") as wallet:
        wallet.log_in("camille@example.org", "correct horse battery")
        wallet.register_key("phone")
        paid = wallet.pay("louis-3f2a", 1250, memo="Covoiturage")
        wallet.verified_receipt(paid.transfer_id)
        kept = wallet.checkpoint()  # keep it; later, against the log as it is then:
        wallet.prove_extends(kept)

Every refusal is an `ApiError` carrying the API's `error` code and its message (in the
client's language), whether the node refused or the client found a receipt it cannot trust.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ledger.canonical import b64, unb64
from ledger.checkpoint import Checkpoint, CheckpointError, open_checkpoint, verifier_key
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.signing import SignedOrder, SigningKey, new_order

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ApiError(Exception):
    """A refusal: `status` is the HTTP status (None when the client itself refused, e.g. a
    receipt that does not verify or a node it could not reach), `error` the stable code,
    `message` the text for people, `details` the rest of the API's answer."""

    def __init__(
        self, status: int | None, error: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(
            f"{error}: {message}" if status is None else f"{status} {error}: {message}"
        )
        self.status, self.error, self.message = status, error, message
        self.details: dict[str, Any] = dict(details or {})

    @property
    def retry_after(self) -> int | None:
        """Seconds to wait before trying again, when the node said so (429, 503)."""
        value = self.details.get("retry_after")
        return int(value) if isinstance(value, int) else None


# -- what the API answers --------------------------------------------------------------------


@dataclass(frozen=True)
class NodeKey:
    owner: str  # "node" or an operator role such as "role:treasurer"
    key_id: str
    public_key: bytes


@dataclass(frozen=True)
class NodeInfo:
    origin: str
    currency: str
    keys: tuple[NodeKey, ...]
    checkpoint: str | None
    tree_size: int

    @property
    def node_key(self) -> bytes:
        """The public key that signs the log's checkpoints."""
        return next(k.public_key for k in self.keys if k.owner == "node")


@dataclass(frozen=True)
class DeviceKey:
    key_id: str
    label: str
    registered_ms: int
    revoked_ms: int | None


@dataclass(frozen=True)
class Movement:
    transfer_id: int
    kind: str
    amount: int  # cents, signed: what it did to this wallet
    counterparty: str | None
    memo: str | None
    created_ms: int
    counterparty_name: str | None = None  # a shop's trade name, a member's name


@dataclass(frozen=True)
class HistoryPage:
    items: tuple[Movement, ...]
    next_before: int | None  # pass as `before` for the next (older) page; None at the end


@dataclass(frozen=True)
class Transfer:
    transfer_id: int
    kind: str
    postings: dict[str, int]
    created_ms: int
    replayed: bool  # True when the node had already posted this very order


@dataclass(frozen=True)
class Receipt:
    transfer_id: int
    leaf: bytes  # the log entry: the signed order, its postings, its time
    index: int
    tree_size: int
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed note the proof leads to

    @property
    def entry(self) -> dict[str, Any]:
        return dict(json.loads(self.leaf))


@dataclass(frozen=True)
class OrderFound:
    """What became of an order this member's device sent: the transfer it made."""

    transfer_id: int
    client_id: str
    kind: str
    postings: dict[str, int]
    created_ms: int
    sealed: bool  # in the signed log already: its receipt can be had


@dataclass(frozen=True)
class Token:
    id: int
    scope: str
    label: str
    secret: str  # shown once by the node: keep it on the device


# -- the client ------------------------------------------------------------------------------


class WalletClient:
    """One member's wallet on one node, as a device holds it.

    `http` may be any `httpx.Client` (a `fastapi.testclient.TestClient` in tests); without
    it one is made for `base_url`. `key` is the device key (a new one is made by
    `register_key` if absent). `node_public_key` pins the node's log key instead of
    trusting the first answer of /api/v1/node.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        http: httpx.Client | None = None,
        token: str | None = None,
        key: SigningKey | None = None,
        language: str = "fr",
        node_public_key: bytes | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._own_http = http is None
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self.token = token
        self.key = key
        self.language = language
        self.csrf: str | None = None
        self.member: dict[str, Any] | None = None
        self._node_key = node_public_key
        self._node: NodeInfo | None = None

    def __enter__(self) -> WalletClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    # -- requests ------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request with this client's credentials and language; raise ApiError on
        any 4xx or 5xx. Unsafe requests under a session carry its CSRF token."""
        headers = {"Accept-Language": self.language, **kwargs.pop("headers", {})}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.csrf is not None and method.upper() not in SAFE_METHODS:
            headers["X-CSRF-Token"] = self.csrf
        try:
            answer = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(None, "unreachable", f"the node did not answer: {exc}") from exc
        if answer.status_code >= 400:
            raise _error_of(answer)
        return answer

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # -- joining, logging in, tokens -----------------------------------------------------

    def join(
        self,
        display_name: str,
        email: str,
        password: str,
        *,
        role: str = "resident",
        merchant: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Sign up as a resident (or a merchant, with `merchant` trade details)."""
        body: dict[str, Any] = {
            "display_name": display_name,
            "email": email,
            "password": password,
            "role": role,
            "locale": self.language if self.language in ("fr", "en") else "fr",
        }
        if merchant is not None:
            body["merchant"] = dict(merchant)
        return dict(self._json("POST", "/api/v1/members", json=body))

    def log_in(self, email: str, password: str) -> dict[str, Any]:
        """Open a session: the cookie stays in the HTTP client, the CSRF token here."""
        answer = self._json("POST", "/api/v1/session", json={"email": email, "password": password})
        self.csrf, self.member, self.token = answer["csrf"], answer["member"], None
        return dict(answer["member"])

    def log_out(self) -> None:
        self.request("DELETE", "/api/v1/session")
        self.csrf = None
        self.http.cookies.clear()

    def me(self) -> dict[str, Any]:
        self.member = dict(self._json("GET", "/api/v1/me"))
        return self.member

    def create_token(self, label: str, scope: str = "wallet") -> Token:
        """An API token for a device (`pos` tokens only read a merchant's incoming payments)."""
        answer = self._json("POST", "/api/v1/me/tokens", json={"scope": scope, "label": label})
        return Token(answer["id"], answer["scope"], answer["label"], answer["token"])

    def use_token(self, token: str) -> None:
        """Authenticate every later request with this bearer token instead of the session."""
        self.token = token

    def revoke_token(self, token_id: int) -> None:
        self.request("DELETE", f"/api/v1/me/tokens/{token_id}")

    # -- the node ------------------------------------------------------------------------

    def node_info(self, *, refresh: bool = False) -> NodeInfo:
        """The node's name, currency, public keys and latest checkpoint (cached)."""
        if self._node is None or refresh:
            answer = self._json("GET", "/api/v1/node")
            keys = tuple(
                NodeKey(k["owner"], k["key"], unb64(k["public_key"])) for k in answer["keys"]
            )
            info = NodeInfo(
                answer["origin"],
                answer["currency"],
                keys,
                answer["checkpoint"],
                answer["tree_size"],
            )
            if self._node_key is None:
                self._node_key = info.node_key  # trust on first use, then hold to it
            elif info.node_key != self._node_key:
                raise ApiError(None, "node_key_changed", "the node's log key is not the one held")
            self._node = info
        return self._node

    # -- device keys ---------------------------------------------------------------------

    def register_key(self, label: str = "device", key: SigningKey | None = None) -> DeviceKey:
        """Register this device's public key (made now if the client holds none)."""
        self.key = key or self.key or SigningKey.generate()
        body = {"public_key": b64(self.key.public_key), "label": label}
        return _device_key(self._json("POST", "/api/v1/me/keys", json=body))

    def device_keys(self) -> list[DeviceKey]:
        """The device keys of this member, revoked ones included."""
        return [_device_key(k) for k in self._json("GET", "/api/v1/me/keys")]

    def revoke_key(self, key_id: str) -> None:
        self.request("DELETE", f"/api/v1/me/keys/{key_id}")

    # -- wallet --------------------------------------------------------------------------

    def balance(self) -> int:
        """The wallet's balance in cents."""
        return int(self._json("GET", "/api/v1/wallet")["balance"])

    def history(self, *, before: int | None = None, limit: int = 20) -> HistoryPage:
        """One page of movements, newest first."""
        params: dict[str, int] = {"limit": limit}
        if before is not None:
            params["before"] = before
        answer = self._json("GET", "/api/v1/wallet/history", params=params)
        items = tuple(Movement(**m) for m in answer["items"])
        return HistoryPage(items, answer["next_before"])

    def movements(self, *, page_size: int = 100) -> Iterator[Movement]:
        """Every movement of the wallet, newest first, page after page."""
        before: int | None = None
        while True:
            page = self.history(before=before, limit=page_size)
            yield from page.items
            if page.next_before is None:
                return
            before = page.next_before

    # -- paying --------------------------------------------------------------------------

    def account(self) -> str:
        member = self.member or self.me()
        return f"member:{member['id']}"

    def sign(
        self, kind: str, *, client_id: str | None = None, ttl_s: int = 300, **fields: Any
    ) -> SignedOrder:
        """Any order, signed by the device key: version, node, id, key, nonce and expiry are
        filled in, the other fields are signed as given (`from_` stands for `from`)."""
        if self.key is None:
            raise ApiError(None, "no_device_key", "register a device key before signing orders")
        if "from_" in fields:
            fields["from"] = fields.pop("from_")
        order = new_order(
            kind, self.key, self.node_info().origin, client_id=client_id, ttl_s=ttl_s, **fields
        )
        return self.key.sign(order)

    def payment_order(
        self,
        to: str,
        cents: int,
        *,
        memo: str | None = None,
        client_id: str | None = None,
        ttl_s: int = 300,
    ) -> SignedOrder:
        """A signed payment of `cents` (an int) from this wallet to a member id or account."""
        if isinstance(cents, bool) or not isinstance(cents, int):
            raise TypeError("an amount is an int of cents")
        return self.sign(
            "payment",
            client_id=client_id,
            ttl_s=ttl_s,
            from_=self.account(),
            to=to if to.startswith("member:") else f"member:{to}",
            amount=cents,
            currency=self.node_info().currency,
            memo=memo,
        )

    def pay(
        self,
        to: str,
        cents: int,
        *,
        memo: str | None = None,
        client_id: str | None = None,
        attempts: int = 3,
    ) -> Transfer:
        """Pay a member. Retries (lost connection, busy node) resend the same signed order."""
        signed = self.payment_order(to, cents, memo=memo, client_id=client_id)
        return self.send(signed, attempts=attempts)

    def send(self, signed: SignedOrder, *, attempts: int = 1) -> Transfer:
        """Post a signed order; on a lost connection or a busy node, send it again, up to
        `attempts` times in all. The node answers a repeat with the first result."""
        for attempt in range(1, attempts + 1):
            try:
                answer = self._json("POST", "/api/v1/transfers", json=signed.to_json())
                return Transfer(**answer)
            except ApiError as exc:
                retryable = exc.error in ("unreachable", "node_busy")
                if not retryable or attempt == attempts:
                    raise
                time.sleep(min(2.0, 0.1 * 2**attempt))
        raise AssertionError("unreachable")

    def find_order(self, client_id: str) -> OrderFound | None:
        """The transfer made from this member's order of `client_id` (its `id`), or None if
        the node never posted it: after a lost answer, a device learns what became of its
        order, and may send the very same signed order again if it is None."""
        try:
            answer = self._json("GET", "/api/v1/transfers", params={"client_id": client_id})
        except ApiError as exc:
            if exc.error == "unknown_order":
                return None
            raise
        return OrderFound(**answer)

    # -- the log's checkpoints -----------------------------------------------------------

    def checkpoint(self, tree_size: int | None = None) -> str:
        """The signed checkpoint of the log: the latest, or the one of `tree_size` entries.
        A note to keep as it is (text); `trusted_checkpoint` reads it."""
        path = "/api/v1/checkpoint" if tree_size is None else f"/api/v1/checkpoints/{tree_size}"
        return self.request("GET", path).text

    def trusted_checkpoint(self, note: str) -> Checkpoint:
        """The log size and root a checkpoint note states, once checked: signed by the node's
        log key (pinned, see `node_info`) for this node's log. ApiError `bad_checkpoint`
        otherwise."""
        try:
            return self._open(note)
        except CheckpointError as exc:
            raise ApiError(
                None, "bad_checkpoint", f"this checkpoint cannot be trusted: {exc}"
            ) from exc

    def _open(self, note: str) -> Checkpoint:
        info = self.node_info()
        assert self._node_key is not None
        return open_checkpoint(note, verifier_key(info.origin, self._node_key), origin=info.origin)

    def prove_extends(self, kept: str) -> Checkpoint:
        """Prove that today's log extends a checkpoint kept earlier: both notes signed by the
        node's key, and the node's consistency proof (RFC 6962) leading from the kept root
        to today's. Returns today's checkpoint; ApiError `bad_checkpoint` for a note that is
        not the node's, `log_not_extended` when the log is not the kept one grown."""
        old = self.trusted_checkpoint(kept)
        new = self.trusted_checkpoint(self.checkpoint())
        if new.size < old.size:
            raise _not_extended(f"it holds {new.size} entries, fewer than the {old.size} kept")
        answer = self._json(
            "GET", "/api/v1/log/consistency", params={"from": old.size, "to": new.size}
        )
        try:
            proof = [unb64(h) for h in answer["proof"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise _not_extended("the node's consistency proof is not a list of hashes") from exc
        if not verify_consistency(old.size, new.size, old.root, new.root, proof):
            raise _not_extended("the consistency proof does not lead from one root to the other")
        return new

    # -- receipts ------------------------------------------------------------------------

    def receipt(
        self, transfer_id: int, *, tree_size: int | None = None, wait_s: float = 10.0
    ) -> Receipt:
        """A transfer's receipt against the latest checkpoint, or the one of `tree_size`
        entries; waits up to `wait_s` for the node to seal the transfer into the log."""
        deadline = time.monotonic() + wait_s
        params = {} if tree_size is None else {"tree_size": tree_size}
        while True:
            try:
                answer = self._json(
                    "GET", f"/api/v1/transfers/{transfer_id}/receipt", params=params
                )
            except ApiError as exc:
                if exc.error != "not_sealed_yet" or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            return Receipt(
                answer["transfer_id"],
                answer["leaf"].encode(),
                answer["index"],
                answer["tree_size"],
                tuple(unb64(h) for h in answer["proof"]),
                answer["checkpoint"],
            )

    def verify_receipt(
        self, receipt: Receipt, order: SignedOrder | None = None, *, kept: str | None = None
    ) -> dict[str, Any]:
        """Check a receipt against the node's key: the checkpoint is signed by it, for this
        node's log, and the inclusion proof leads from the leaf to its root. With `kept` (a
        checkpoint note of the receipt's size that the member kept), the proof must lead to
        that one's root instead of the one the node sent. With `order`, the leaf must also
        hold exactly that signed order. Returns the log entry."""
        try:
            head = self._open(kept if kept is not None else receipt.checkpoint)
        except CheckpointError as exc:
            raise _bad_receipt(f"its checkpoint cannot be trusted: {exc}") from exc
        if head.size != receipt.tree_size:
            raise _bad_receipt("the proof is for another size of the log")
        if not verify_inclusion(
            leaf_hash(receipt.leaf), receipt.index, head.size, receipt.proof, head.root
        ):
            raise _bad_receipt("the inclusion proof does not lead to the signed root")
        try:
            entry = receipt.entry
        except ValueError as exc:
            raise _bad_receipt("its leaf is not JSON") from exc
        if entry.get("type") != "transfer" or entry.get("id") != receipt.transfer_id:
            raise _bad_receipt("its leaf is not this transfer")
        if order is not None and (
            entry.get("order") != order.order or entry.get("sig") != b64(order.signature)
        ):
            raise _bad_receipt("its leaf does not hold the order that was sent")
        return entry

    def verified_receipt(
        self, transfer_id: int, order: SignedOrder | None = None, *, kept: str | None = None
    ) -> Receipt:
        """Fetch a receipt and check it (see `verify_receipt`): against the latest checkpoint,
        or against `kept`, a checkpoint note the member kept (the proof is asked for its
        size)."""
        size = None if kept is None else self.trusted_checkpoint(kept).size
        found = self.receipt(transfer_id, tree_size=size)
        self.verify_receipt(found, order, kept=kept)
        return found


def _error_of(answer: httpx.Response) -> ApiError:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "error" not in body:
        return ApiError(answer.status_code, "http_error", answer.text[:200])
    details = {k: v for k, v in body.items() if k not in ("error", "message")}
    if "retry-after" in answer.headers and answer.headers["retry-after"].isdigit():
        details.setdefault("retry_after", int(answer.headers["retry-after"]))
    return ApiError(answer.status_code, str(body["error"]), str(body.get("message", "")), details)


def _bad_receipt(why: str) -> ApiError:
    return ApiError(None, "bad_receipt", f"this receipt does not prove the transfer: {why}")


def _not_extended(why: str) -> ApiError:
    return ApiError(
        None, "log_not_extended", f"today's log does not extend the checkpoint kept: {why}"
    )


def _device_key(row: Mapping[str, Any]) -> DeviceKey:
    return DeviceKey(row["key_id"], row["label"], row["registered_ms"], row["revoked_ms"])

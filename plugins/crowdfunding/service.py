"""The crowdfunding rules. Money moves only through the ledger's escrow operations: the
member's signed escrow payment in, and out again signed with the plugin's own key, each
movement with a client id naming its event, so that a retry, a second run of the deadline
or a second process moves it once."""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlalchemy import Connection

from ledger import repository as ledger_repo
from ledger.errors import LedgerError
from ledger.operations import plugin_escrow
from ledger.posting import Posted
from ledger.signing import DEFAULT_TTL_S, SignedOrder
from members import service as members_service
from members.access import Member
from plugins.crowdfunding import errors
from plugins.crowdfunding import repository as repo
from plugins.crowdfunding.settings import CrowdfundingSettings
from runtime.node import Node
from runtime.reactions import LedgerEvent, TransferPosted
from runtime.signing import post, posted_or_existing, sign_as
from web.i18n import translations
from web.refusals import Money

log = logging.getLogger(__name__)

NAME = "crowdfunding"
KEY = f"plugin:{NAME}"
MATCHING = plugin_escrow(NAME, "matching")
DAY_MS = 86_400_000
BP = 10_000  # basis points: the matching is `match_per_unit_bp / BP` units per unit
MOST_MATCH_BP = 10 * BP
STATES = {
    "proposed": "waiting for moderation",
    "rejected": "rejected",
    "open": "open",
    "funded": "goal reached",
    "missed": "goal missed",
}
PUBLISHED = ("open", "funded", "missed")
PICTURE_SIDE = 1600  # pixels: a larger picture is scaled down
MOST_PIXELS = 40_000_000  # a small file may unpack to a huge image: refused before decoding
CAMPAIGN_ESCROW = re.compile(rf"escrow:{NAME}:campaign-([0-9]+)")
# How a member's wallet names the plugin's escrows (msgids: French in crowdfunding.po).
ESCROW_NAMES = {"campaign": "Project · {title}", "matching": "Commune's matching fund"}
MATCH_ID = re.compile(rf"{NAME}-c([0-9]+)-match-")


def settings(node: Node) -> CrowdfundingSettings:
    found = node.plugin_settings(NAME)
    assert isinstance(found, CrowdfundingSettings)
    return found


def now_ms() -> int:
    return int(time.time() * 1000)


def escrow(campaign_id: int) -> str:
    return plugin_escrow(NAME, f"campaign-{campaign_id}")


def escrow_names(conn: Connection, codes: Sequence[str], lang: str) -> dict[str, str]:
    """The plugin's escrows among `codes`, as a member who pledges (or is paid) reads them:
    a campaign's by its title, and the commune's matching fund."""
    said = translations(lang).gettext
    wanted = {
        int(found[1]): code
        for code in codes
        if (found := CAMPAIGN_ESCROW.fullmatch(code)) and len(found[1]) <= 18  # a BIGINT
    }
    titles = repo.titles(conn, sorted(wanted))
    named = {wanted[c]: said(ESCROW_NAMES["campaign"]).format(title=t) for c, t in titles.items()}
    if MATCHING in codes:
        named[MATCHING] = said(ESCROW_NAMES["matching"])
    return named


# -- proposing and moderating ---------------------------------------------------------------


def propose(node: Node, member: Member, fields: dict[str, Any]) -> dict[str, Any]:
    """A campaign waiting for an admin: for the member, or for the commune's account."""
    most = settings(node).max_goal
    if not 0 < fields["goal"] <= most:
        raise errors.BAD_GOAL(most=Money(most, node.ledger.chart.local))
    if not 1 <= fields["days"] <= 60:
        raise errors.BAD_DURATION()
    if any(not 0 < t["minimum"] <= fields["goal"] for t in fields["tiers"]):
        raise errors.BAD_TIER()
    beneficiary = member.id
    if fields["for_commune"]:
        beneficiary = settings(node).commune
        if not beneficiary:
            raise errors.NO_COMMUNE()
    row = {
        "owner": member.id,
        "beneficiary": beneficiary,
        "title": fields["title"],
        "description": fields["description"],
        "goal": fields["goal"],
        "days": fields["days"],
        "state": "proposed",
        "created_ms": now_ms(),
    }
    with node.engine.begin() as conn:
        campaign_id = repo.insert_campaign(conn, row)
        repo.insert_tiers(conn, campaign_id, fields["tiers"])
    return campaign(node, campaign_id)


def campaign(node: Node, campaign_id: int) -> dict[str, Any]:
    with node.ledger.reading() as conn:
        found = repo.campaign(conn, campaign_id)
    if found is None:
        raise errors.UNKNOWN_CAMPAIGN()
    return found


def display_name(node: Node, member_id: str) -> str:
    """How the pages name a member (the beneficiary): their name, or their id if gone."""
    found = members_service.find_member(node, member_id)
    return found.display_name if found is not None else member_id


def published(node: Node, campaign_id: int) -> dict[str, Any]:
    """A campaign anyone may see: published, or refused as unknown."""
    found = campaign(node, campaign_id)
    if found["state"] not in PUBLISHED:
        raise errors.UNKNOWN_CAMPAIGN()
    return found


def visible(node: Node, member: Member | None, campaign_id: int) -> dict[str, Any]:
    """Published campaigns to all; a proposal to its owner and the admin too."""
    found = campaign(node, campaign_id)
    if found["state"] in PUBLISHED:
        return found
    if member is not None and (member.id == found["owner"] or member.role == "admin"):
        return found
    raise errors.UNKNOWN_CAMPAIGN()


def listed(node: Node, states: tuple[str, ...] = PUBLISHED) -> list[dict[str, Any]]:
    with node.ledger.reading() as conn:
        return repo.campaigns_in(conn, states)


def publish(
    node: Node, campaign_id: int, at_ms: int | None = None, rate_bp: int = 0, cap: int = 0
) -> dict[str, Any]:
    """Open the campaign to pledges: its deadline counts from now, its escrow is opened in
    the same transaction (or neither happens). The commune's matching, `rate_bp` per unit
    up to `cap`, is promised out of what the matching fund has not promised elsewhere."""
    found = campaign(node, campaign_id)
    if not 0 <= rate_bp <= MOST_MATCH_BP or cap < 0 or (cap > 0) != (rate_bp > 0):
        raise errors.BAD_MATCHING()
    opens = now_ms() if at_ms is None else at_ms
    with node.engine.begin() as conn:
        free = _unpromised(conn)
        if cap > free:
            raise errors.MATCHING_SHORT(free=Money(free, node.ledger.chart.local))
        if not repo.change_state(
            conn,
            campaign_id,
            "proposed",
            state="open",
            opens_ms=opens,
            deadline_ms=opens + found["days"] * DAY_MS,
            match_per_unit_bp=rate_bp,
            match_cap=cap,
        ):
            raise errors.NOT_PROPOSED(state=STATES[found["state"]])
        node.ledger.open_account(escrow(campaign_id), conn)
    return campaign(node, campaign_id)


def reject(node: Node, campaign_id: int, reason: str) -> dict[str, Any]:
    found = campaign(node, campaign_id)
    with node.engine.begin() as conn:
        if not repo.change_state(conn, campaign_id, "proposed", state="rejected", reason=reason):
            raise errors.NOT_PROPOSED(state=STATES[found["state"]])
    return campaign(node, campaign_id)


def _owned(node: Node, member: Member, campaign_id: int) -> dict[str, Any]:
    found = visible(node, member, campaign_id)
    if found["owner"] != member.id:
        raise errors.NOT_OWNER()
    return found


def set_picture(node: Node, member: Member, campaign_id: int, data: bytes) -> None:
    """Keep the picture re-encoded as JPEG (which drops its metadata), at most 1600 px."""
    _owned(node, member, campaign_id)
    most = settings(node).max_picture_bytes
    refused = errors.BAD_PICTURE(most=most)
    if not data or len(data) > most:
        raise refused
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("JPEG", "PNG", "WEBP"):
                raise refused
            if image.width * image.height > MOST_PIXELS:
                raise refused
            image.load()
            clean = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise refused from None
    clean.thumbnail((PICTURE_SIDE, PICTURE_SIDE))
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=85)
    with node.engine.begin() as conn:
        repo.set_picture(conn, campaign_id, out.getvalue())


def picture(node: Node, member: Member | None, campaign_id: int) -> bytes:
    visible(node, member, campaign_id)
    with node.ledger.reading() as conn:
        found = repo.picture(conn, campaign_id)
    if found is None:
        raise errors.NO_PICTURE()
    return found


def post_update(node: Node, member: Member, campaign_id: int, text: str) -> int:
    _owned(node, member, campaign_id)
    with node.engine.begin() as conn:
        return repo.add_update(conn, campaign_id, text, now_ms())


def details(node: Node, campaign_id: int) -> dict[str, Any]:
    """Its rewards, each with how many backers pledged at least its minimum (a reward with
    a limit is full once that many have), and its news."""
    with node.ledger.reading() as conn:
        tiers = repo.tiers_of(conn, campaign_id)
        held = repo.held(conn, escrow(campaign_id))
        news = repo.updates_of(conn, campaign_id)
    pledges: dict[str, int] = {}
    for payment in held:
        pledges[payment["member"]] = pledges.get(payment["member"], 0) + payment["left"]
    for tier in tiers:
        tier["backers"] = sum(1 for cents in pledges.values() if cents >= tier["minimum"])
        tier["full"] = tier["most_backers"] is not None and tier["backers"] >= tier["most_backers"]
    return {"tiers": tiers, "updates": news}


# -- progress -------------------------------------------------------------------------------


def progress(node: Node, found: dict[str, Any], at_ms: int | None = None) -> dict[str, Any]:
    """What the campaign page shows and polls: pledged, backers, days left, the matching."""
    with node.ledger.reading() as conn:
        payments = repo.held(conn, escrow(found["id"])) if found["state"] in PUBLISHED else []
        matched = repo.matched(conn, found["id"], MATCHING)
    if found["state"] == "open":
        live = [p for p in payments if p["left"] > 0]
        pledged = sum(p["left"] for p in live)
    else:
        live = [p for p in payments if p["counted"]]
        pledged = found["raised"] or 0
    now = now_ms() if at_ms is None else at_ms
    deadline = found["deadline_ms"]
    days_left = (
        max(0, -(-(deadline - now) // DAY_MS)) if deadline and found["state"] == "open" else 0
    )
    return {
        "id": found["id"],
        "state": found["state"],
        "goal": found["goal"],
        "pledged": pledged,
        "backers": len({p["member"] for p in live}),
        "days_left": days_left,
        "deadline_ms": deadline,
        "percent": min(100, pledged * 100 // found["goal"]),
        "matching": _match_due(found, pledged),
        "matched": matched,
    }


def _match_due(found: dict[str, Any], pledged: int) -> int:
    return min(int(found["match_cap"]), pledged * int(found["match_per_unit_bp"]) // BP)


def pledged_by(node: Node, member: Member, campaign_id: int) -> int:
    with node.ledger.reading() as conn:
        payments = repo.held(conn, escrow(campaign_id))
    return sum(p["left"] for p in payments if p["member"] == member.id)


def trail(node: Node, found: dict[str, Any], viewer: Member | None) -> list[dict[str, Any]]:
    """Every pledge, refund and release of the campaign, with its transfer id, in order.
    Who pledged is shown to that member, the treasurer and the admin only (None to others):
    the beneficiary's releases are public."""
    with node.ledger.reading() as conn:
        ins = repo.held(conn, escrow(found["id"]))
        outs = repo.movements_of(conn, escrow(found["id"]), found["id"])
    rows = [
        {
            "transfer_id": p["transfer_id"],
            "kind": "escrow_payment",
            "account": f"member:{p['member']}",
            "amount": p["amount"],
            "ref": None,
            "rule": None,
            "created_ms": p["created_ms"],
        }
        for p in ins
    ]
    rows += [
        {
            "transfer_id": m["transfer_id"],
            "kind": m["kind"],
            "account": m["to_account"],
            "amount": m["amount"],
            "ref": m["ref"],
            "rule": m["rule"],
            "created_ms": m["created_ms"],
        }
        for m in outs
    ]
    for row in rows:
        if row["kind"] != "escrow_release" and not _may_see(viewer, row["account"]):
            row["account"] = None
    shown = {r["account"].removeprefix("member:") for r in rows if r["account"]}
    names = members_service.names(node, shown) if shown else {}
    for row in rows:
        account = row["account"]
        row["name"] = None if account is None else names.get(account.removeprefix("member:"))
        # The receipt page opens for the members a transfer touched: link only those.
        row["receipt"] = viewer is not None and viewer.has_wallet and account == viewer.account
    return sorted(rows, key=lambda r: r["transfer_id"])


def _may_see(viewer: Member | None, account: str) -> bool:
    return viewer is not None and (
        viewer.role in ("treasurer", "admin") or viewer.account == account
    )


# -- pledges --------------------------------------------------------------------------------


def _open(node: Node, campaign_id: int) -> dict[str, Any]:
    found = published(node, campaign_id)
    if found["state"] != "open" or now_ms() >= found["deadline_ms"]:
        raise errors.NOT_OPEN()
    return found


def pledge(node: Node, member: Member, campaign_id: int, envelope: SignedOrder) -> Posted:
    """Post the member's signed escrow payment to the campaign: a new pledge, or more."""
    _open(node, campaign_id)
    order = envelope.order
    if order.get("kind") != "escrow_payment" or order.get("from") != member.account:
        raise errors.NOT_THE_PLEDGE()
    if order.get("to") != escrow(campaign_id) or not isinstance(order.get("amount"), int):
        raise errors.NOT_THE_PLEDGE()
    posted = post(node, envelope)
    record_payment(
        node,
        posted.transfer_id,
        escrow(campaign_id),
        campaign_id,
        member.id,
        posted.postings[escrow(campaign_id)],
        posted.created_ms,
    )
    if campaign(node, campaign_id)["state"] != "open":
        settle(node, campaign_id)  # it closed meanwhile: given back at once
    return posted


def lower(node: Node, member: Member, campaign_id: int, new_total: int) -> list[Posted]:
    """Lower the member's pledge to `new_total` (0 cancels it): refunds from the newest
    payments, each signed with the plugin's key. Each refund expires at the deadline: a
    request still on its way then is refused by the ledger, never refunded after the count."""
    found = _open(node, campaign_id)
    signed_at = time.time()
    ttl_s = min(DEFAULT_TTL_S, found["deadline_ms"] // 1000 - int(signed_at))
    if ttl_s <= 0:
        raise errors.NOT_OPEN()
    with node.ledger.reading() as conn:
        mine = [
            p
            for p in repo.held(conn, escrow(campaign_id))
            if p["member"] == member.id and p["left"] > 0
        ]
    pledged = sum(p["left"] for p in mine)
    if not 0 <= new_total < pledged:
        raise errors.BAD_PLEDGE_CHANGE(pledged=Money(pledged, node.ledger.chart.local))
    to_refund, done = pledged - new_total, []
    for payment in reversed(mine):
        if to_refund == 0:
            break
        cents = min(to_refund, payment["left"])
        # The payment with what was left of it names this refund: each left is met once.
        client_id = f"{NAME}-c{campaign_id}-p{payment['transfer_id']}-at{payment['left']}"
        try:
            posted = _move(
                node,
                "escrow_refund",
                client_id,
                campaign_id,
                payment,
                cents,
                f"member:{member.id}",
                "crowdfunding.pledge_lowered",
                expiry={"ttl_s": ttl_s, "now": signed_at},
            )
        except LedgerError as exc:
            if exc.code == "order_expired":  # the deadline passed on the way
                raise errors.NOT_OPEN() from None
            raise
        if posted is not None:
            done.append(posted)
        to_refund -= cents
    return done


def _move(
    node: Node,
    kind: str,
    client_id: str,
    campaign_id: int | None,
    payment: dict[str, Any],
    cents: int,
    to: str,
    rule: str,
    expiry: dict[str, Any] | None = None,
) -> Posted | None:
    signed = sign_as(
        node,
        KEY,
        kind,
        client_id,
        **(expiry or {}),
        rule=rule,
        ref=payment["transfer_id"],
        to=to,
        amount=cents,
        currency=node.ledger.chart.local,
        **{"from": payment["escrow"]},
    )
    posted = posted_or_existing(node, KEY, signed)
    if posted is not None:
        with node.engine.begin() as conn:
            repo.record_movement(
                conn,
                {
                    "transfer_id": posted.transfer_id,
                    "kind": kind,
                    "ref": payment["transfer_id"],
                    "escrow": payment["escrow"],
                    "campaign": campaign_id,
                    "to_account": to,
                    "amount": cents,
                    "rule": rule,
                    "created_ms": posted.created_ms,
                },
            )
    return posted


def record_payment(
    node: Node,
    transfer_id: int,
    to: str,
    campaign_id: int | None,
    member: str,
    cents: int,
    created_ms: int,
) -> None:
    with node.engine.begin() as conn:
        repo.record_payment(
            conn,
            {
                "transfer_id": transfer_id,
                "escrow": to,
                "campaign": campaign_id,
                "member": member,
                "amount": cents,
                "created_ms": created_ms,
            },
        )


# -- the matching fund ----------------------------------------------------------------------


def pay_matching(node: Node, member: Member, envelope: SignedOrder) -> Posted:
    """The commune's account pays into the matching fund."""
    if not settings(node).commune or member.id != settings(node).commune:
        raise errors.NOT_COMMUNE()
    order = envelope.order
    wanted = {"kind": "escrow_payment", "from": member.account, "to": MATCHING}
    if any(order.get(k) != v for k, v in wanted.items()):
        raise errors.NOT_THE_MATCHING()
    posted = post(node, envelope)
    record_payment(
        node,
        posted.transfer_id,
        MATCHING,
        None,
        member.id,
        posted.postings[MATCHING],
        posted.created_ms,
    )
    return posted


def _unpromised(conn: Connection) -> int:
    """What the matching fund holds beyond what it may still owe: the caps of open
    campaigns, and what funded ones are due and not yet paid."""
    left = sum(int(p["left"]) for p in repo.held(conn, MATCHING))
    promised = 0
    for found in repo.campaigns_in(conn, ("open", "funded")):
        if found["state"] == "open":
            promised += int(found["match_cap"])
        else:
            due = _match_due(found, found["raised"] or 0)
            promised += max(0, due - repo.matched(conn, found["id"], MATCHING))
    return max(0, left - promised)


def matching_fund(node: Node) -> dict[str, Any]:
    with node.ledger.reading() as conn:
        payments = repo.held(conn, MATCHING)
        outs = repo.movements_of(conn, MATCHING, None)
        free = _unpromised(conn)
    return {
        "escrow": MATCHING,
        "paid_in": sum(p["amount"] for p in payments),
        "left": sum(p["left"] for p in payments),
        "unpromised": free,
        "payments": payments,
        "releases": outs,
        "commune": settings(node).commune,
    }


# -- what the log says: payments and movements made by anyone, recorded once ---------------


def on_ledger_event(node: Node, event: LedgerEvent) -> None:
    """Record escrow payments into, and movements out of, the plugin's escrows as they reach
    the log (a crash between posting and recording loses nothing). Idempotent."""
    if not isinstance(event, TransferPosted):
        return
    order = event.order
    if event.kind == "escrow_payment":
        to = str(order.get("to", ""))
        found = CAMPAIGN_ESCROW.fullmatch(to)
        if not found and to != MATCHING:
            return
        member = str(order.get("from", "")).removeprefix("member:")
        campaign_id = int(found.group(1)) if found else None
        record_payment(
            node, event.transfer_id, to, campaign_id, member, event.postings[to], event.created_ms
        )
    elif event.kind in ("escrow_refund", "escrow_release"):
        source = str(order.get("from", ""))
        found = CAMPAIGN_ESCROW.fullmatch(source)
        matched = MATCH_ID.match(str(order.get("id", "")))
        if not found and source != MATCHING:
            return
        campaign_id = int((found or matched).group(1)) if (found or matched) else None  # type: ignore[union-attr]
        with node.engine.begin() as conn:
            repo.record_movement(
                conn,
                {
                    "transfer_id": event.transfer_id,
                    "kind": event.kind,
                    "ref": int(order["ref"]),
                    "escrow": source,
                    "campaign": campaign_id,
                    "to_account": str(order["to"]),
                    "amount": -event.postings[source],
                    "rule": order.get("rule"),
                    "created_ms": event.created_ms,
                },
            )


# -- the deadline ---------------------------------------------------------------------------


def _left_by_ledger(conn: Connection, payments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each payment with what the ledger says is left of it: its amount less every refund and
    release naming it that reached the ledger, recorded in the plugin's tables yet or not (a
    lowering's refund is posted first, recorded after)."""
    taken = ledger_repo.dependents(conn, [p["transfer_id"] for p in payments])
    out = []
    for payment in payments:
        left = int(payment["amount"]) - taken[payment["transfer_id"]].refunded
        out.append({**payment, "left": min(int(payment["left"]), left)})
    return out


def close(node: Node, campaign_id: int, at_ms: int) -> bool:
    """Close a due campaign: the pledges are counted as the ledger holds them, under the lock
    every posting into or out of the escrow takes (its balance row; SQLite's one writer), so
    a lowering's refund is either in the count or waits for it. One process closes (a
    conditional UPDATE); the others find it closed."""
    found = campaign(node, campaign_id)
    account = node.ledger.account(escrow(campaign_id))
    with node.engine.begin() as conn:
        ledger_repo.lock_balances(conn, [account.id], [])
        held = _left_by_ledger(conn, repo.held(conn, escrow(campaign_id)))
        counted = [p for p in held if p["left"] > 0]
        raised = sum(p["left"] for p in counted)
        state = "funded" if raised >= found["goal"] else "missed"
        if not repo.change_state(
            conn, campaign_id, "open", state=state, closed_ms=at_ms, raised=raised
        ):
            return False
        repo.mark_counted(conn, [p["transfer_id"] for p in counted])
    return True


def settle(node: Node, campaign_id: int) -> int:
    """Give out what a closed campaign holds: counted pledges of a funded campaign to its
    beneficiary (and the matching), everything else back to its payer, each payment for what
    the ledger says is left of it (never more than the escrow holds). Safe to repeat."""
    found = campaign(node, campaign_id)
    if found["state"] not in ("funded", "missed"):
        return 0
    with node.ledger.reading() as conn:
        payments = [
            p for p in _left_by_ledger(conn, repo.held(conn, escrow(campaign_id))) if p["left"] > 0
        ]
    moved = 0
    for payment in payments:
        tid = payment["transfer_id"]
        if found["state"] == "funded" and payment["counted"]:
            args = (
                "escrow_release",
                f"{NAME}-c{campaign_id}-p{tid}-release",
                f"member:{found['beneficiary']}",
                "crowdfunding.goal_reached",
            )
        else:
            args = (
                "escrow_refund",
                f"{NAME}-c{campaign_id}-p{tid}-closed-refund",
                f"member:{payment['member']}",
                "crowdfunding.goal_missed",
            )
        moved += _safely(
            node, args[0], args[1], campaign_id, payment, payment["left"], args[2], args[3]
        )
    if found["state"] == "funded":
        moved += _release_matching(node, found)
    return moved


def _safely(
    node: Node,
    kind: str,
    client_id: str,
    campaign_id: int,
    payment: dict[str, Any],
    cents: int,
    to: str,
    rule: str,
) -> int:
    try:
        return 1 if _move(node, kind, client_id, campaign_id, payment, cents, to, rule) else 0
    except LedgerError as exc:  # its record is behind the log: the next run sees it right
        log.warning("crowdfunding: %s of payment %s refused: %s", kind, payment["transfer_id"], exc)
        return 0


def _release_matching(node: Node, found: dict[str, Any]) -> int:
    """The commune's matching, drawn on what is left of the fund's payments, oldest first."""
    with node.ledger.reading() as conn:
        due = _match_due(found, found["raised"] or 0) - repo.matched(conn, found["id"], MATCHING)
        fund = [p for p in repo.held(conn, MATCHING) if p["left"] > 0]
    moved = 0
    for payment in fund:
        if due <= 0:
            break
        cents = min(due, payment["left"])
        client_id = f"{NAME}-c{found['id']}-match-p{payment['transfer_id']}"
        moved += _safely(
            node,
            "escrow_release",
            client_id,
            found["id"],
            payment,
            cents,
            f"member:{found['beneficiary']}",
            "crowdfunding.goal_reached",
        )
        due -= cents
    return moved


def close_due(node: Node, at_ms: int) -> str:
    """The deadline job: close the due campaigns, then give out what closed ones hold."""
    with node.ledger.reading() as conn:
        due = repo.due(conn, at_ms)
    closed = sum(1 for campaign_id in due if close(node, campaign_id, at_ms))
    with node.ledger.reading() as conn:
        pending = set(repo.closed_with_units_left(conn)) | set(due)
        funded = [c for c in repo.campaigns_in(conn, ("funded",)) if c["match_per_unit_bp"]]
    moved = sum(settle(node, campaign_id) for campaign_id in sorted(pending))
    for found in funded:
        if found["id"] not in pending:
            moved += _release_matching(node, found)
    return f"{closed} campaigns closed, {moved} movements"

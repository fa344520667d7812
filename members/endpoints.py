"""The members' API (JSON, under /api/v1): joining, the session, one's own device keys and
API tokens, whom one pays; and the admin's and key officers' acts on members. Thin
handlers over `service.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from members import service
from members.access import (
    SESSION_COOKIE,
    Admin,
    AnyMember,
    KeyOfficer,
    MaybeMember,
    Member,
    WalletHolder,
    WalletOwner,
    node_of,
    token_hash,
)
from members.account.seen import SeenFrom
from members.errors import UNKNOWN_MEMBER
from members.logins import DEVICE_COOKIE, DEVICE_DAYS
from members.schemas import (
    KEY_ID,
    MEMBER_ID,
    DeviceKeyCreate,
    DeviceKeyOut,
    Login,
    MemberCreate,
    MemberOut,
    MembershipUpdate,
    OperatorCreate,
    PayeeOut,
    SessionOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
)
from members.shops import MAX_QUERY, MIN_QUERY
from web.schemas import ONE_LINE

# Documented under the wallet's tag: a wallet's client finds joining, the session and its
# keys beside its payments.
router = APIRouter(prefix="/api/v1", tags=["wallet"])


def member_out(member: Member) -> MemberOut:
    return MemberOut(
        id=member.id,
        role=member.role,
        display_name=member.display_name,
        email=member.email,
        office=member.office,
        locale=member.locale,
        membership_until=member.membership_until,
        frozen=member.frozen_reason is not None,
        account=member.account if member.has_wallet else None,
    )


def set_session_cookie(request: Request, response: Response, token: str, days: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=days * 86400,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def set_login_cookies(request: Request, response: Response, done: service.LoggedIn) -> None:
    """The new session's cookie, and the known-device cookie if this device is new to the
    account (`members.logins`)."""
    set_session_cookie(request, response, done.token, node_of(request).settings.session_days)
    if done.device is not None:
        response.set_cookie(
            DEVICE_COOKIE,
            done.device,
            max_age=DEVICE_DAYS * 86400,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )


def client_address(request: Request) -> str:
    """The caller's address: the proxy's, or behind a proxy the node trusts
    (`SOU_TRUSTED_PROXIES`), the one it forwarded."""
    return request.client.host if request.client else "unknown"


@router.post("/members", status_code=201, response_model=MemberOut)
def join(body: MemberCreate, request: Request, _: MaybeMember) -> MemberOut:
    """Join the association's currency as a resident or a merchant."""
    member = service.join(
        node_of(request),
        display_name=body.display_name,
        email=body.email,
        password=body.password,
        role=body.role,
        locale=body.locale,
        merchant=body.merchant.model_dump() if body.merchant else None,
        address=client_address(request),
    )
    return member_out(member)


@router.post("/session", response_model=SessionOut)
def log_in(body: Login, request: Request, response: Response, _: MaybeMember) -> SessionOut:
    """Log in with email and password; the session cookie is set on the response."""
    done = service.log_in(
        node_of(request),
        body.email,
        body.password,
        client_address(request),
        request.cookies.get(DEVICE_COOKIE),
        SeenFrom.of(request),
    )
    set_login_cookies(request, response, done)
    return SessionOut(member=member_out(done.member), csrf=done.csrf)


@router.delete("/session", status_code=204)
def log_out(request: Request, response: Response, _: AnyMember) -> None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        service.log_out(node_of(request), token_hash(cookie))
    response.delete_cookie(SESSION_COOKIE)


@router.get("/me", response_model=MemberOut)
def me(member: AnyMember) -> MemberOut:
    return member_out(member)


@router.get("/me/keys", response_model=list[DeviceKeyOut])
def my_keys(request: Request, member: WalletHolder) -> list[DeviceKeyOut]:
    return [DeviceKeyOut(**row) for row in service.device_keys(node_of(request), member)]


@router.post("/me/keys", status_code=201, response_model=DeviceKeyOut)
def add_key(body: DeviceKeyCreate, request: Request, member: WalletOwner) -> DeviceKeyOut:
    """Register this device's Ed25519 public key (the node signs the key event)."""
    node = node_of(request)
    key_id = service.add_device_key(node, member, body.public_key, body.label)
    return next(
        DeviceKeyOut(**k) for k in service.device_keys(node, member) if k["key_id"] == key_id
    )


@router.delete("/me/keys/{key_id}", status_code=204)
def revoke_key(
    key_id: Annotated[str, Path(pattern=KEY_ID)], request: Request, member: WalletHolder
) -> None:
    service.revoke_device_key(node_of(request), member, key_id)


@router.get("/me/tokens", response_model=list[TokenOut])
def my_tokens(request: Request, member: AnyMember) -> list[TokenOut]:
    return [TokenOut(**row) for row in service.api_tokens(node_of(request), member)]


@router.post("/me/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, request: Request, member: WalletOwner) -> TokenCreated:
    """An API token for a device. A `pos` token (merchants) only reads incoming payments."""
    made = service.create_token(node_of(request), member, body.scope, body.label)
    return TokenCreated(**made)


@router.delete("/me/tokens/{token_id}", status_code=204)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**53)], request: Request, member: AnyMember
) -> None:
    service.revoke_token(node_of(request), member, token_id)


@router.get("/payees", response_model=list[PayeeOut])
def payees(
    request: Request,
    member: WalletHolder,
    q: Annotated[str, Query(min_length=MIN_QUERY, max_length=MAX_QUERY, pattern=ONE_LINE)],
) -> list[PayeeOut]:
    """Whom you may pay, found by what you type: approved shops by words of their trade
    name or place (any case, any accent); a resident, or a merchant not approved, only by
    their exact wallet id or email. At most 10, exact matches first."""
    return [PayeeOut(**vars(p)) for p in service.find_payees(node_of(request), q)]


@router.post("/admin/operators", status_code=201, response_model=MemberOut, tags=["admin"])
def create_operator(body: OperatorCreate, request: Request, admin: Admin) -> MemberOut:
    """An admin makes an exchange-office operator, a treasurer or another admin."""
    member = service.create_operator(
        node_of(request),
        display_name=body.display_name,
        email=body.email,
        password=body.password,
        role=body.role,
        office=body.office,
    )
    return member_out(member)


@router.put("/members/{member_id}/membership", response_model=MemberOut, tags=["admin"])
def renew_membership(
    member_id: Annotated[str, Path(pattern=MEMBER_ID)],
    body: MembershipUpdate,
    request: Request,
    admin: Admin,
) -> MemberOut:
    """Record a member's yearly membership (adhésion) as paid up to a day."""
    return member_out(service.renew_membership(node_of(request), member_id, body.until))


@router.post(
    "/members/{member_id}/keys/recover",
    status_code=201,
    response_model=DeviceKeyOut,
    tags=["admin"],
)
def recover_keys(
    member_id: Annotated[str, Path(pattern=MEMBER_ID)],
    body: DeviceKeyCreate,
    request: Request,
    officer: KeyOfficer,
) -> DeviceKeyOut:
    """Operator-assisted recovery: revoke every key of the member, register the new one."""
    node = node_of(request)
    member = service.get_member(node, member_id)
    if not member.has_wallet:
        raise UNKNOWN_MEMBER()
    key_id = service.recover_keys(node, member, body.public_key, body.label)
    return next(
        DeviceKeyOut(**k) for k in service.device_keys(node, member) if k["key_id"] == key_id
    )

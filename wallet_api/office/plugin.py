"""The exchange office (cash in, cash out, deposits at the bank) as a plugin."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from sqlalchemy import Connection

from runtime.hookspecs import BankConfirmation, MenuEntry, hookimpl
from wallet_api.office import endpoints, pages, service


@hookimpl
def sou_routers() -> Sequence[APIRouter]:
    return [endpoints.router, pages.router]


@hookimpl
def sou_menu() -> Sequence[MenuEntry]:
    return [MenuEntry("/office", "Exchange office", frozenset({"office"}), order=30)]


@hookimpl
def sou_bank_confirmations(
    conn: Connection, transfer_ids: Sequence[int]
) -> Sequence[BankConfirmation]:
    """The deposits the treasurer marked found on the bank statement by hand."""
    return service.reconciled_by_hand(conn, transfer_ids)

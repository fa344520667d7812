"""The refusals of card top-ups, Stripe's webhooks and card shortfalls: each code with its
HTTP status and its one message (msgids; French in web/locale/fr/LC_MESSAGES/cards.po).
Refusals every feature shares (an unknown member, a frozen wallet...) are in
members/errors.py.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- topping a wallet up by card ---------------------------------------------------------------
# Residents read it: how the admin sets Stripe up is on the admin's page, /admin/cards.
CARD_TOPUP_UNAVAILABLE = NamedRefusal(
    409,
    "card_topup_unavailable",
    "Card top-ups are not available yet; top up at an exchange office.",
)
TOPUP_AMOUNT = NamedRefusal(
    422, "topup_amount", "A card top-up is from {minimum} to {maximum} euros."
)
MEMBERSHIP_REQUIRED = NamedRefusal(
    403,
    "membership_required",
    "Your membership of the association is not up to date: renew it to convert euros.",
)
UNKNOWN_CARD_PAYMENT = NamedRefusal(
    404, "unknown_card_payment", "There is no card payment with this reference."
)
WALLET_BUSY = NamedRefusal(409, "wallet_busy", "The wallet kept changing; try again in a moment.")

# -- Stripe and its webhooks -------------------------------------------------------------------
STRIPE_ERROR = NamedRefusal(
    502, "stripe_error", "The card payment service did not answer as expected; try again."
)
BAD_WEBHOOK_EVENT = NamedRefusal(
    400, "bad_webhook_event", "This webhook does not carry a Stripe event."
)
BAD_WEBHOOK_SIGNATURE = NamedRefusal(
    400,
    "bad_webhook_signature",
    "This webhook is not signed by Stripe with this node's secret, or is too old.",
)
UNKNOWN_PAYMENT_INTENT = NamedRefusal(
    404, "unknown_payment_intent", "This card payment is not a top-up of this node."
)
PAYMENT_NOT_SUCCEEDED = NamedRefusal(
    409,
    "payment_not_succeeded",
    "Stripe says this payment has not succeeded (it is {stripe_status}).",
)
WRONG_CURRENCY = NamedRefusal(
    409, "wrong_currency", "Card top-ups are paid in euros, not in {currency}."
)
AMOUNT_CHANGED = NamedRefusal(
    409,
    "amount_changed",
    "The amount paid ({paid} cents) is not the top-up's amount ({expected} cents).",
)

# -- card payments taken back: what a member owes ----------------------------------------------
NOTHING_OWED = NamedRefusal(409, "nothing_owed", "Nothing is owed on this card payment.")
DISPUTE_OPEN = NamedRefusal(
    409,
    "dispute_open",
    "What this card payment owes comes from a dispute still open: it is settled once "
    "Stripe decides (won, nothing is owed any more).",
)
NOTHING_TO_TAKE_BACK = NamedRefusal(
    409, "nothing_to_take_back", "{name}'s wallet holds nothing to take back yet."
)
CLEARING_SHORT = NamedRefusal(
    409,
    "clearing_short",
    "The node's Stripe account (clearing:stripe) holds only {available}, less than "
    "the {amount} to write off: record Stripe's payouts as they were first.",
)
NOT_FROZEN = NamedRefusal(409, "not_frozen", "This wallet is not frozen.")
STILL_OWED = NamedRefusal(
    409,
    "still_owed",
    "{name} still owes {owed} for card payments taken back: take their units "
    "back or write the shortfall off first.",
)

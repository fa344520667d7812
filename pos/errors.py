"""The refusals of the counter: invoices, payments at the counter, refunds (msgids; French
in web/locale/fr/LC_MESSAGES/pos.po). Refusals every feature shares are in
members/errors.py.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- invoices ----------------------------------------------------------------------------------
UNKNOWN_INVOICE = NamedRefusal(404, "unknown_invoice", "There is no such invoice.")
INVOICE_PAID = NamedRefusal(409, "invoice_paid", "This invoice is already paid.")
INVOICE_EXPIRED = NamedRefusal(
    409, "invoice_expired", "This invoice has expired: ask the shop for a new code."
)
INVOICE_CANCELLED = NamedRefusal(
    409, "invoice_cancelled", "The shop cancelled this invoice: ask for a new code."
)
BAD_LABEL = NamedRefusal(
    422,
    "bad_invoice_label",
    "A label is one line of at most 80 characters, without control characters.",
)
BAD_TTL = NamedRefusal(422, "bad_ttl", "An invoice stays valid between 1 and 60 minutes.")

# -- the links of QR codes ---------------------------------------------------------------------
BAD_LINK = NamedRefusal(
    400, "bad_link", "This code is incomplete or damaged: scan it again, or ask the shop."
)
FORGED_LINK = NamedRefusal(
    400,
    "forged_link",
    "This code was not made by this node, or it was altered: do not pay with it.",
)

# -- paying at the counter ---------------------------------------------------------------------
SHOP_NOT_OPEN = NamedRefusal(
    409,
    "shop_not_open",
    "This shop cannot take payments yet: the association has not approved it.",
)
NOT_A_SHOP = NamedRefusal(404, "not_a_shop", "There is no shop with this id.")
WRONG_PAYEE = NamedRefusal(422, "wrong_payee", "This payment does not go to the shop of this code.")
WRONG_AMOUNT = NamedRefusal(
    422, "wrong_amount", "This payment is not of the invoice's amount, {amount}."
)
WRONG_INVOICE = NamedRefusal(422, "wrong_invoice", "This payment does not name this invoice.")
OWN_SHOP = NamedRefusal(422, "own_shop", "You cannot pay your own shop.")

# -- refunds -----------------------------------------------------------------------------------
NOT_A_SALE = NamedRefusal(404, "not_a_sale", "There is no payment to your shop with this number.")
BAD_REFUND = NamedRefusal(
    422,
    "bad_refund",
    "A refund goes from your shop back to the customer who paid, of at most what they paid.",
)
REFUND_TOO_LARGE = NamedRefusal(
    409, "refund_too_large", "At most {refundable} of this payment can still be refunded."
)

# -- the day -----------------------------------------------------------------------------------
BAD_DAY = NamedRefusal(422, "bad_sales_day", "Give a day as YYYY-MM-DD, within the last two years.")

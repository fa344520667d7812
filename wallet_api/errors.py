"""The refusals of the wallet and of the log's proofs: each code with its HTTP status and
its one message (msgids; French in web/locale/fr/LC_MESSAGES/core.po). Refusals every
feature shares (an unknown member, a frozen wallet...) are in members/errors.py.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- sending from a wallet ---------------------------------------------------------------------
UNKNOWN_ORDER = NamedRefusal(
    404,
    "unknown_order",
    "No transfer was made from an order of yours with this id: the node has not "
    "posted it, and the same signed order can be sent again.",
)
UNKNOWN_TRANSFER = NamedRefusal(404, "unknown_transfer", "There is no such transfer.")
# An invoice names its shop and amount: only the counter's pay page checks them against it.
INVOICE_AT_COUNTER = NamedRefusal(
    422,
    "invoice_at_counter",
    "An invoice is paid from its own page (scan the shop's code), not from the send page.",
)

# -- the signed log and its proofs -------------------------------------------------------------
NO_CHECKPOINT = NamedRefusal(404, "no_checkpoint", "The log has no checkpoint yet.")
UNKNOWN_CHECKPOINT = NamedRefusal(
    404, "unknown_checkpoint", "The log has no checkpoint of {size} entries."
)
NOT_IN_THAT_TREE = NamedRefusal(
    409,
    "not_in_that_tree",
    "This transfer entered the log after its first {size} entries: ask for a later checkpoint.",
)
NOT_SEALED_YET = NamedRefusal(
    409, "not_sealed_yet", "This transfer is not in the signed log yet; try in a second."
)
BAD_TREE_SIZES = NamedRefusal(
    422, "bad_tree_sizes", "The first size ({old}) must not be larger than the second ({new})."
)
BEYOND_THE_LOG = NamedRefusal(
    404, "beyond_the_log", "The log has signed {latest} entries so far, not {size}."
)
LOG_DAMAGED = NamedRefusal(
    503,
    "log_damaged",
    "The log's stored tree is damaged, so no proof can be given now. "
    "The treasurer should run `sou audit`.",
)

"""The AMAP's refusals: each code with its HTTP status and its one message (French in
locale/fr/LC_MESSAGES/amap.po). Nothing is written when one is raised."""

from __future__ import annotations

from web.refusals import NamedRefusal

UNKNOWN_CONTRACT = NamedRefusal(404, "unknown_contract", "There is no such contract.")
UNKNOWN_DISTRIBUTION = NamedRefusal(404, "unknown_distribution", "There is no such distribution.")
UNKNOWN_SUBSCRIPTION = NamedRefusal(404, "unknown_subscription", "There is no such subscription.")
UNKNOWN_PRODUCT = NamedRefusal(404, "unknown_product", "There is no such product.")
UNKNOWN_PLACE = NamedRefusal(404, "unknown_place", "There is no such delivery place.")
NOT_A_MERCHANT = NamedRefusal(
    409, "not_a_merchant", "Only a merchant member can be named a producer."
)
NOT_A_PRODUCER = NamedRefusal(409, "not_a_producer", "This member is not a producer of the AMAP.")
NOT_A_MEMBER = NamedRefusal(409, "not_a_member", "There is no member {member} with a wallet.")
NOT_COORDINATOR = NamedRefusal(
    403, "not_coordinator", "Only a coordinator of this contract may do this."
)
NOT_YOUR_PRODUCT = NamedRefusal(403, "not_your_product", "Only its producer may change a product.")
BAD_BASKET = NamedRefusal(
    422, "bad_basket", "A subscription contract needs a basket of the producer's products."
)
ALREADY_SUBSCRIBED = NamedRefusal(
    409, "already_subscribed", "You have already subscribed to this contract."
)
NOTHING_TO_SUBSCRIBE = NamedRefusal(
    409, "nothing_to_subscribe", "This contract has no distribution left to subscribe to."
)
WRONG_PAYMENT = NamedRefusal(
    422,
    "wrong_payment",
    "The payment must be an escrow payment of {amount} from your wallet to {escrow}.",
)
NOTHING_DUE = NamedRefusal(409, "nothing_due", "Nothing is due on this subscription.")
AFTER_CUTOFF = NamedRefusal(
    409, "after_cutoff", "Orders for this distribution closed at its cut-off."
)
BEYOND_STOCK = NamedRefusal(
    409, "beyond_stock", "Only {remaining} of {product} are left for this distribution."
)
NOT_ORDERABLE = NamedRefusal(
    409, "not_orderable", "A subscription's basket is fixed: it cannot be ordered."
)
NOT_IN_CONTRACT = NamedRefusal(
    422, "not_in_contract", "This product or distribution is not part of the contract."
)
BEYOND_CREDIT = NamedRefusal(
    409, "beyond_credit", "This order costs {cost}, but only {credit} is left on your card."
)
ORDER_BEING_PAID = NamedRefusal(
    409,
    "order_being_paid",
    "Your last order for this distribution is still waiting for its payment: try again in a "
    "few minutes.",
)
PAYMENT_NEEDED = NamedRefusal(
    422, "payment_needed", "This order needs a payment of {amount} into the subscription's escrow."
)
NO_JOKERS = NamedRefusal(
    409, "no_jokers", "This contract allows {most} absences and you have used them all."
)
NOT_SUBSCRIPTION = NamedRefusal(
    409, "not_subscription", "Absences are declared on subscription contracts only."
)
ALREADY_ABSENT = NamedRefusal(
    409, "already_absent", "An absence is already declared for this distribution."
)
NO_NEXT_DISTRIBUTION = NamedRefusal(
    409, "no_next_distribution", "There is no later distribution to carry this basket to."
)
SUBSCRIPTION_LEFT = NamedRefusal(409, "subscription_left", "You have left this contract.")
DISTRIBUTION_CLOSED = NamedRefusal(
    409, "distribution_closed", "This distribution is already {state}."
)
BAD_SIGNATURE_ENCODING = NamedRefusal(
    422, "bad_signature_encoding", "The signature is not base64url."
)
FIRST_PAYMENT_NEEDED = NamedRefusal(
    409,
    "first_payment_needed",
    "Your subscription starts with its first payment: pay it first.",
)

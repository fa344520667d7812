"""The crowdfunding plugin's refusals: each code with its HTTP status and its one message
(French in locale/fr/LC_MESSAGES/crowdfunding.po)."""

from __future__ import annotations

from web.refusals import NamedRefusal

UNKNOWN_CAMPAIGN = NamedRefusal(404, "unknown_campaign", "There is no such campaign.")
BAD_GOAL = NamedRefusal(422, "bad_goal", "The goal must be more than zero and at most {most}.")
BAD_DURATION = NamedRefusal(
    422, "bad_duration", "A campaign lasts from 1 to 60 days after its publication."
)
BAD_MATCHING = NamedRefusal(
    422,
    "bad_matching",
    "The matching must be at most 10 units per unit pledged, and have a cap (or neither).",
)
MATCHING_SHORT = NamedRefusal(
    409,
    "matching_short",
    "The matching fund has {free} not yet promised to other campaigns: the cap must be at "
    "most that.",
)
NO_COMMUNE = NamedRefusal(409, "no_commune", "No commune's account is set on this node.")
NOT_OPEN = NamedRefusal(409, "campaign_not_open", "This campaign is not open to pledges.")
NOT_PROPOSED = NamedRefusal(
    409, "campaign_not_proposed", "This campaign is {state}: nothing to do."
)
NOT_THE_PLEDGE = NamedRefusal(
    422,
    "not_the_pledge",
    "A pledge must be an escrow payment from your own wallet to this campaign's escrow.",
)
NOT_THE_MATCHING = NamedRefusal(
    422,
    "not_the_matching",
    "A payment to the matching fund must be an escrow payment from the commune's account "
    "to the fund.",
)
NOT_COMMUNE = NamedRefusal(
    409, "not_the_commune", "Only the commune's account pays into the matching fund."
)
BAD_PLEDGE_CHANGE = NamedRefusal(
    422, "bad_pledge_change", "Your pledge is {pledged}: you may only lower it (to zero to cancel)."
)
NOT_OWNER = NamedRefusal(
    403, "not_the_owner", "Only the one who proposed this campaign may do this."
)
BAD_PICTURE = NamedRefusal(
    422, "bad_picture", "The picture must be a JPEG, PNG or WebP image of at most {most} bytes."
)
NO_PICTURE = NamedRefusal(404, "no_picture", "This campaign has no picture.")
BAD_TIER = NamedRefusal(
    422, "bad_tier", "A reward's minimum pledge must be more than zero and at most the goal."
)
BAD_SIGNATURE_ENCODING = NamedRefusal(
    422, "bad_signature_encoding", "The signature is not base64url."
)

"""The refusals of the paper notes: their codes (links), the treasurer's series, the offices'
sales, the merchants' deposits (msgids; French in web/locale/fr/LC_MESSAGES/notes.po).
Refusals every feature shares (a reused request id, a signature badly encoded...) are in
members/errors.py.
"""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- a note's code: what a camera or a typed address gives ------------------------------------
NOTE_LINK_DAMAGED = NamedRefusal(
    400, "note_link_damaged", "This note's code is incomplete or damaged: scan it again."
)
NOTE_LINK_TOO_LONG = NamedRefusal(
    400,
    "note_link_too_long",
    "This code is far longer than a note's: it is not a note of this node.",
)
NOTE_ELSEWHERE = NamedRefusal(
    400,
    "note_elsewhere",
    "This code leads to {host}, not to this node: it is not one of its notes.",
)
NOTE_FORGED = NamedRefusal(
    400,
    "note_forged",
    "This note was not made by this node, or its code was altered: do not accept it.",
)
NOTE_EXPIRED = NamedRefusal(
    410,
    "note_expired",
    "This note's series is past its end of validity: it can no longer be spent. "
    "Ask the association.",
)
UNKNOWN_NOTE_SERIES = NamedRefusal(
    404, "unknown_note_series", "There is no series {series} of notes on this node."
)

# -- where a note is ---------------------------------------------------------------------------
NOTE_DEPOSITED = NamedRefusal(
    409,
    "note_deposited",
    "This note was already deposited: it is no longer valid. Do not accept it.",
)
NOTE_VOID = NamedRefusal(
    409, "note_void", "This note was cancelled by the association: it is no longer valid."
)
NOTE_NOT_ISSUED = NamedRefusal(
    409,
    "note_not_issued",
    "This note was never sold: it is still in the association's stock. Do not accept it.",
)

# -- a merchant's deposit ----------------------------------------------------------------------
NOTE_SHOP_NOT_OPEN = NamedRefusal(
    409,
    "note_shop_not_open",
    "Your shop is not approved by the association yet: it cannot deposit notes.",
)
NOTE_DEPOSIT_MISMATCH = NamedRefusal(
    422,
    "note_deposit_mismatch",
    "This deposit order does not name this note, or not your wallet: sign it again from "
    "the note's page.",
)

# -- the treasurer's series --------------------------------------------------------------------
BAD_SERIES = NamedRefusal(
    422,
    "bad_series",
    "A series is named by a capital letter and up to 7 capital letters or digits, like A or B27.",
)
SERIES_EXISTS = NamedRefusal(
    409, "series_exists", "There is already a series {series}: choose another name."
)
BAD_DENOMINATION = NamedRefusal(422, "bad_denomination", "A note is worth 1, 2, 5, 10 or 20 units.")
BAD_NOTE_COUNT = NamedRefusal(422, "bad_note_count", "A series has from 1 to {maximum} notes.")
BAD_VALID_UNTIL = NamedRefusal(
    422,
    "bad_valid_until",
    "Give the last day the notes are good as YYYY-MM-DD, after today, or leave it empty.",
)
BAD_SERIALS = NamedRefusal(
    422,
    "bad_serials",
    "Give the first and last serial numbers, from 1 to {count}, the first not after the last.",
)
TOO_MANY_NOTES = NamedRefusal(
    422, "too_many_notes", "At most {maximum} notes at a time: split the range."
)
UNKNOWN_NOTE_OFFICE = NamedRefusal(
    404, "unknown_note_office", "There is no exchange office {office}."
)
NOTES_NOT_IN_STOCK = NamedRefusal(
    409,
    "notes_not_in_stock",
    "Note {note} is not in the printed stock: only notes in stock go to an office.",
)
VOID_REASON_MISSING = NamedRefusal(
    422,
    "void_reason_missing",
    "Say why these notes are voided, in one line of at most {maximum} characters.",
)
NOTHING_TO_VOID = NamedRefusal(
    409,
    "nothing_to_void",
    "No note of this range can be voided: every one was deposited or voided already.",
)
PAPER_RESERVE_SHORT = NamedRefusal(
    409,
    "paper_reserve_short",
    "The paper reserve holds only {available}: have the offices deposit the notes' cash at "
    "the bank before voiding notes in circulation.",
)

# -- an office's sales -------------------------------------------------------------------------
NOTES_NOT_AT_OFFICE = NamedRefusal(
    409,
    "notes_not_at_office",
    "Note {note} is not in your office's stock: check its serial number.",
)
NOTE_SLIP_REF = NamedRefusal(
    422,
    "note_slip_ref",
    "Give the paying-in slip's reference: letters, digits, spaces and _./#- only.",
)
NOTE_TILL_SHORT = NamedRefusal(
    409,
    "note_till_short",
    "The till holds only {available} from notes sold and not yet deposited: a deposit "
    "cannot be more than that.",
)

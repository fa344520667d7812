"""The refusals of the reconciliation: each code with its HTTP status and its one message
(msgids; French in web/locale/fr/LC_MESSAGES/reconciliation.po)."""

from __future__ import annotations

from web.refusals import NamedRefusal

# -- reading a statement -----------------------------------------------------------------------
EMPTY_STATEMENT = NamedRefusal(422, "empty_statement", "The file is empty: choose a statement.")
STATEMENT_TOO_LARGE = NamedRefusal(
    413, "statement_too_large", "The statement is over {maximum} bytes: split it by month."
)
UNKNOWN_FORMAT = NamedRefusal(422, "unknown_format", "The format must be camt, csv or stripe-csv.")
HOSTILE_XML = NamedRefusal(
    422,
    "hostile_xml",
    "The XML file declares entities or a document type: a bank statement never does, so it "
    "was refused unread.",
)
MALFORMED_XML = NamedRefusal(
    422, "malformed_xml", "The XML file cannot be read (line {line}): {reason}."
)
NOT_CAMT053 = NamedRefusal(
    422,
    "not_camt053",
    "This XML file is not a CAMT.053 bank statement (camt.053.001.02 or later).",
)
BAD_ENTRY = NamedRefusal(422, "bad_entry", "Entry {entry} of the statement: {reason}.")
BAD_CSV = NamedRefusal(422, "bad_csv", "Line {line} of the CSV file: {reason}.")
CSV_HEADER = NamedRefusal(
    422,
    "csv_header",
    "The CSV file has no header line naming its columns ({expected}).",
)
NOT_EUROS = NamedRefusal(
    422, "not_euros", "Entry {entry} is in {currency}: the reserve is held in euros only."
)
BAD_ACCOUNT = NamedRefusal(
    422, "bad_account", "The account must be reserve:digital, reserve:paper or clearing:stripe."
)

# -- Stripe's balance --------------------------------------------------------------------------
STRIPE_NOT_SET = NamedRefusal(
    409, "stripe_not_set", "Card payments are not set up: there is no Stripe balance to read."
)
STRIPE_UNREACHABLE = NamedRefusal(
    502, "stripe_unreachable", "Stripe could not be reached or refused: try again later."
)

# -- matching by hand --------------------------------------------------------------------------
UNKNOWN_LINE = NamedRefusal(404, "unknown_line", "There is no statement line with this id.")
UNKNOWN_MOVEMENT = NamedRefusal(
    404, "unknown_movement", "Transfer {transfer} moved no euros on {account}."
)
LINE_MATCHED = NamedRefusal(
    409, "line_matched", "This statement line is already matched: undo that match first."
)
MOVEMENT_MATCHED = NamedRefusal(
    409,
    "movement_matched",
    "Transfer {transfer} is already matched to another line: undo that match first.",
)
NOTE_NEEDED = NamedRefusal(
    422, "note_needed", "Say in a note why this line goes with this transfer (1 to 280 characters)."
)
MOVEMENT_NEEDED = NamedRefusal(
    422,
    "movement_needed",
    "Choose the ledger movement this line goes with (several, if the bank booked them all on "
    "this one line).",
)
TOO_MANY_MOVEMENTS = NamedRefusal(
    422, "too_many_movements", "A line can be matched to at most {maximum} movements."
)
BATCH_SUM_DIFFERS = NamedRefusal(
    422,
    "batch_sum_differs",
    "These {count} transfers add up to {total} and the line to {amount}: a line the bank "
    "booked for several transfers must be their sum to the cent. Nothing was matched.",
)
UNKNOWN_MATCH = NamedRefusal(404, "unknown_match", "There is no match with this id to undo.")

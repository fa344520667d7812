"""The audit runs' refusals: each code with its HTTP status and its one message (French in
web/locale/fr/LC_MESSAGES/audit.po). Nothing is written when one is raised."""

from __future__ import annotations

from web.refusals import NamedRefusal

AUDIT_RUNNING = NamedRefusal(
    409,
    "audit_running",
    "An audit is already running (run {run}): wait for it to finish, its progress is shown "
    "on the audit page.",
)
UNKNOWN_RUN = NamedRefusal(404, "unknown_audit_run", "There is no such audit run.")

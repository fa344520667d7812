"""Text that people type and others read: one line of visible characters.

A character of Unicode's "other" categories can make a text read differently from what it
holds: bidirectional overrides and isolates (`pay \u202e0001 SOU` shows as `pay UOS 1000`),
zero-width spaces and joiners, byte-order marks, control characters and line or paragraph
separators (these are one-line fields), private-use, surrogate and unassigned code points.
Memos and names refuse them all. Emoji
sequences joined by U+200D (ZERO WIDTH JOINER) are refused too: the joiner is invisible
and the emoji it joins stay readable when written apart.
"""

from __future__ import annotations

import unicodedata

# Cc control, Cf format (bidi, zero-width), Co private use, Cs surrogate, Cn unassigned,
# Zl and Zp: U+2028 and U+2029 break the line as a newline does.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
HIDDEN_REASON = "must not contain control or invisible characters"


def hidden_character(text: str) -> str | None:
    """The first character of `text` that a reader could not see (or that would change how
    the rest reads), as `U+XXXX`; None when every character is visible text or a space."""
    for char in text:
        if unicodedata.category(char) in HIDDEN_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None

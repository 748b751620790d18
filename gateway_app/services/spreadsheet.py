"""CSV for spreadsheets: the one place every export's cells are written.

Excel, LibreOffice and Google Sheets evaluate a cell whose text starts with ``=``, ``+``,
``-`` or ``@`` (some also after leading spaces, and after a tab or carriage return
they drop), so text from outside the gateway - a caller ID or a name sent by a provider,
a summary, anything a user typed - could run a formula on the machine of whoever opens
the export. Every text cell that could start one is prefixed with an apostrophe
(OWASP's "CSV injection" advice): the spreadsheet shows the text and evaluates nothing.
Numbers and timestamps the gateway writes itself are left as they are.
"""
import csv
import io

# what a spreadsheet reads as the start of a formula, full-width forms included
# (East Asian input methods produce them, and Excel folds them to the ASCII ones)
FORMULA_STARTS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# characters a spreadsheet drops or skips before it looks at the first one
CONTROL_STARTS = ("\t", "\r", "\n", "\x00", "\x0b", "\x0c")


def needs_neutralising(text):
    return text.startswith(CONTROL_STARTS) or text.lstrip().startswith(FORMULA_STARTS)


def cell(value):
    """``value`` as a CSV cell no spreadsheet evaluates."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    return "'" + text if needs_neutralising(text) else text


def csv_chunks(header, rows, rows_per_chunk=200):
    """CSV text (``header`` first, then each row's cells through ``cell``) in chunks of a
    few hundred rows, for a streamed response or a file written in the background."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([cell(name) for name in header])
    pending = 0
    for row in rows:
        writer.writerow([cell(value) for value in row])
        pending += 1
        if pending >= rows_per_chunk:
            yield drain(buffer)
            pending = 0
    yield drain(buffer)


def drain(buffer):
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text

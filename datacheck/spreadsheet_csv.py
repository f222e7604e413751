"""Reading a CSV file the user made, as spreadsheets save it: a manifest, a filled review file.

Excel and LibreOffice save "CSV" in several ways: UTF-8 with or without a byte-order mark
("CSV UTF-8"), Windows-1252 (plain "CSV" on Western-European Windows), UTF-16 with a
byte-order mark ("Unicode text", tab-separated), and with ``;`` between fields in the locales
that write a decimal comma (most of Europe). :func:`read_spreadsheet_csv` tells which from
the bytes and the header, and reads the file once: its bytes are held once and pandas parses
them once (as bytes, with their encoding: handed the decoded text in an ``io.StringIO``,
pandas would copy it again at four bytes a character).

:func:`csv_line_end` is the writing side: the line end with which a CSV we write (findings,
review queue, manifest) reads back as written, carriage returns in file names included.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Collection, Iterator
from pathlib import Path

import pandas as pd

from .errors import BadDataError

#: The field separators a spreadsheet's CSV may use, in order of preference.
SEPARATORS = (",", ";", "\t")
#: Byte-order marks of UTF-16, little- and big-endian.
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
#: Bytes that no Windows-1252 text holds: the five it leaves undefined, and NUL.
_NOT_CP1252 = re.compile(rb"[\x00\x81\x8d\x8f\x90\x9d]")
_LINE_END = re.compile(r"\r\n?|\n")
#: pandas' parser error for a row longer than the header.
_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def read_spreadsheet_csv(path: str | os.PathLike, *, expected: Collection[str], what: str,
                         verbatim: Collection[str] = (), **options) -> pd.DataFrame:
    """Read a CSV as a spreadsheet may have saved it.

    The file must be a regular file (a named pipe is never opened) and is read once. Its text
    is UTF-16 when it starts with a UTF-16 byte-order mark and its header names one of
    ``expected`` (binary junk can start with those two bytes too), else UTF-8 (a byte-order
    mark is read past), else Windows-1252. The separator is the first of :data:`SEPARATORS`
    that splits the header into fields of which one is in ``expected``, else the one that
    splits it into the most fields.

    Parameters
    ----------
    path : path-like
        The CSV file.
    expected : collection of str
        Column names the caller reads: they tell the encoding and the separator. A header
        naming one of them twice is refused (pandas would rename the second copy, and the
        first would be used without a word).
    what : str
        What the file is to the user (``"manifest"``, ``"review file"``), for messages:
        ``cannot read manifest m.csv: ...``.
    verbatim : collection of str, optional
        Columns read as text as it is written, where only an empty cell is missing (a class
        named ``NA`` stays ``NA``); the other columns are parsed as pandas parses them by
        default (``NA``, ``null``, ... missing; numbers as numbers).
    **options
        Passed to :func:`pandas.read_csv` (not ``sep``, ``encoding`` or ``index_col``; with
        ``verbatim``, not ``dtype``, ``na_values`` or ``keep_default_na`` either).

    Returns
    -------
    pandas.DataFrame
        One row per data row, columns as the header names them, blanks around a name of
        ``expected`` aside (``path, label`` names ``label``).

    Raises
    ------
    BadDataError
        The file cannot be read or is not a regular file; its bytes are none of these
        encodings (the message names the first byte Windows-1252 does not hold and its
        offset); a row has more fields than the header; the header repeats an ``expected``
        column; or pandas cannot parse it. One line, starting ``cannot read <what> <path>``.
    """
    from .engine.image_stats import require_regular_file

    path = Path(path)

    def refused(reason: str) -> BadDataError:
        return BadDataError(f"cannot read {what} {path}: {reason}")

    try:
        require_regular_file(path)  # a named pipe or device would block the read for ever
        data = path.read_bytes()
    except OSError as exc:
        raise refused(exc.strerror or str(exc)) from exc
    text, encoding = _decode(data, expected, refused)
    sep, header = choose_separator(text, expected)
    del text  # pandas reads the bytes: the whole text is not kept beside them and the frame
    # A header typed by hand ("path, label, split") pads names with blanks, which the separator
    # is chosen past: the expected columns are named without them, the user's own as written.
    ours = {name: name.strip() for name in header if name.strip() in expected}
    named = [ours.get(name, name) for name in header]
    repeated = sorted({name for name in named if name in expected and named.count(name) > 1})
    if repeated:
        raise BadDataError(f"{what} {path} has more than one {repeated[0]!r} column; keep one")
    if verbatim:
        options.update(_verbatim_options(header, [name for name, bare in ours.items() if bare in verbatim]))
    try:
        frame = pd.read_csv(io.BytesIO(data), sep=sep, encoding=encoding, **options)
    except ValueError as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        ragged = _RAGGED.search(reason)
        if ragged:  # pandas' own wording ("Error tokenizing data. C error: ...") is parser jargon
            fields, line, seen = ragged.groups()
            reason = f"ragged CSV: line {line} has {seen} fields, the header has {fields}"
        raise refused(reason) from exc
    if not isinstance(frame.index, pd.RangeIndex):
        # The first row has more fields than the header: pandas took the surplus leading fields
        # as the index, for every row, so each column would hold its left neighbour's values
        # (a longer row further down is the parser error above).
        fields = len(frame.columns)
        raise refused(f"ragged CSV: the first row after the header has {fields + frame.index.nlevels} fields, "
                      f"the header has {fields} (a stray delimiter?)")
    return frame.rename(columns={name: bare for name, bare in ours.items() if name != bare})


def csv_line_end(frame: pd.DataFrame) -> str:
    """The ``lineterminator`` for writing ``frame`` with :meth:`pandas.DataFrame.to_csv`: ``"\\n"``,
    or ``"\\r\\n"`` when a text cell holds a carriage return.

    Python's :mod:`csv` writer quotes a field for the characters of its line end only, so with
    ``"\\n"`` a file name holding ``"\\r"`` (Linux allows it) is written bare, and every reader
    (:mod:`csv`, pandas, spreadsheets) ends the row there: the row splits in two. Ending lines
    with ``"\\r\\n"`` (RFC 4180's line end) quotes such a field, and the file reads back as written.
    """
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            continue
        try:  # vectorised: the findings of a large audit have millions of rows
            if values.str.contains("\r", regex=False, na=False).any():
                return "\r\n"
        except AttributeError:  # an object column that holds no text at all
            continue
    return "\n"


def choose_separator(text: str, expected: Collection[str]) -> tuple[str, list[str]]:
    """The field separator of the CSV ``text`` and its header split by it.

    Parameters
    ----------
    text : str
        The CSV's text, or its beginning.
    expected : collection of str
        Column names the header should hold.

    Returns
    -------
    sep : str
        The first of :data:`SEPARATORS` that splits the header into fields of which one (blanks
        around it aside) is in ``expected``; without one, the one that splits it into the most
        fields (the first of them on a tie).
    header : list of str
        The header's fields, as ``sep`` splits them.
    """
    headers = {sep: header_fields(text, sep) for sep in SEPARATORS}
    for sep in SEPARATORS:
        if any(name.strip() in expected for name in headers[sep]):
            return sep, headers[sep]
    sep = max(SEPARATORS, key=lambda s: (len(headers[s]), -SEPARATORS.index(s)))
    return sep, headers[sep]


def header_fields(text: str, sep: str) -> list[str]:
    """The header of the CSV ``text`` as pandas reads it with the separator ``sep``.

    Parameters
    ----------
    text : str
        The CSV's text, or its beginning.
    sep : str
        The field separator.

    Returns
    -------
    list of str
        The fields of the first record that is not blank (pandas skips empty lines and lines
        of spaces and tabs other than ``sep`` before the header), quotes removed; empty when
        there is none or it cannot be split.
    """
    try:
        for record in csv.reader(_lines(text), delimiter=sep):
            if len(record) > 1 or (record and record[0].strip(" \t")):
                return record
    except csv.Error:  # a field over the csv module's size limit
        pass
    return []


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text``, made one at a time: the header is in the first few.

    Parameters
    ----------
    text : str

    Yields
    ------
    str
        A line with its end (``\\n``, ``\\r\\n`` or ``\\r``, as pandas ends lines), for :mod:`csv`.
    """
    start = 0
    for end in _LINE_END.finditer(text):
        yield text[start:end.end()]
        start = end.end()
    if start < len(text):
        yield text[start:]


def _decode(data: bytes, expected: Collection[str], refused) -> tuple[str, str]:
    """The text of a spreadsheet's CSV and its encoding (see :func:`read_spreadsheet_csv`).

    Parameters
    ----------
    data : bytes
        The file's bytes.
    expected : collection of str
        Column names the header should hold: a UTF-16 byte-order mark counts only before one.
    refused : callable
        ``refused(reason)`` is the :class:`BadDataError` that names the file.

    Returns
    -------
    text : str
        The decoded text, a byte-order mark left out.
    encoding : str
        ``"utf-16"``, ``"utf-8"`` or ``"cp1252"``, for :func:`pandas.read_csv`.

    Raises
    ------
    BadDataError
        UTF-16 text that is cut short or damaged, or bytes that no Windows-1252 text holds.
    """
    if data[:2] in _UTF16_BOMS:
        start = data[:4096].decode("utf-16", "replace")  # an even length: no character cut in two
        if any(name.strip() in expected for name in choose_separator(start, expected)[1]):
            try:
                return data.decode("utf-16"), "utf-16"
            except UnicodeDecodeError as exc:  # an odd length (cut short), a lone surrogate
                raise refused(f"it starts as UTF-16 text but is not (byte 0x{data[exc.start]:02x} at offset "
                              f"{exc.start}); save it as CSV UTF-8") from exc
    try:
        return data.decode("utf-8-sig"), "utf-8"  # pandas reads past the byte-order mark itself
    except UnicodeDecodeError as exc:
        bad = _NOT_CP1252.search(data)
        if bad:
            raise refused(f"it is neither UTF-8 nor Windows-1252 text (byte 0x{data[bad.start()]:02x} at offset "
                          f"{bad.start()}); save it as CSV UTF-8") from exc
        return data.decode("cp1252"), "cp1252"


def _verbatim_options(header: list[str], verbatim: Collection[str]) -> dict:
    """``read_csv`` options that read the columns ``verbatim`` as text where only an empty cell
    is missing, and the others as pandas does by default, in one pass.

    pandas takes missing-value words per column, looked up by name first and then by
    position: the verbatim columns get ``""`` by name, every position pandas' own words.

    Parameters
    ----------
    header : list of str
        The header's fields.
    verbatim : collection of str
        Names of the columns read verbatim (absent ones are no error).

    Returns
    -------
    dict
        ``dtype``, ``keep_default_na`` and ``na_values`` for :func:`pandas.read_csv`.
    """
    defaults = sorted(_pandas_na_words())
    na_values: dict = {position: defaults for position in range(len(header))}
    na_values.update({name: [""] for name in verbatim})
    return {"dtype": {name: "string" for name in verbatim}, "keep_default_na": False, "na_values": na_values}


def _pandas_na_words() -> frozenset:
    """The words :func:`pandas.read_csv` reads as missing by default: pandas' own set (a private
    name, where pandas 2 and 3 keep it), else the list pandas documents."""
    try:
        from pandas._libs.parsers import STR_NA_VALUES
    except ImportError:
        return _DOCUMENTED_NA_WORDS
    return frozenset(STR_NA_VALUES)


#: read_csv's ``na_values`` defaults, as pandas documents them.
_DOCUMENTED_NA_WORDS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                                  "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})

"""Contact CSV files read a row at a time, each row checked and shaped for one provider API.

Why this exists: a contact import turns every data row of a file that someone
exported from a spreadsheet or a CRM into one contact, and those files are
messy. They come as UTF-8 with or without a byte-order mark, as Excel's
"Unicode text" (UTF-16 LE, tab-separated) or as cp1252; separated by commas,
semicolons, tabs or pipes; with CRLF, LF or bare CR line ends; with quoted
cells holding delimiters and line breaks; with headers in whatever words
people use ("E-mail", "Mobile phone", "Zip"). The files can have a million
rows, so the reader streams: memory stays flat (except the duplicate table,
8 bytes of digest and 4 of row number a contact, at most half full), and the
per-row work is the phone and email checks plus a few dict operations.

Each data row becomes a ``Row``: the cells as they were (for the report), the
contact in the target API's field names, its identity ``key`` for duplicate
detection, or the reason it is refused, naming the field. Row numbers are the
ones a spreadsheet shows: the header is row 1, blank lines count, and a
record whose quoted cell holds a line break is still one row.

Targets and the fields they take:

* ``messaging``: messaging-api.txt → Databases → POST /api/rest/contacts
  (email, phone, landline, countryIso, name, surname, customFields[] with
  key, type string|date|decimal and value). The doc requires one of email,
  phone or landline, and countryIso whenever a phone or landline is given.
  Phones go out as international digits without ``+`` ("phone": "34666666666"
  in the same section). The doc's GET example shows a national landline
  ("900222222"); we send landlines in the same international form as phones,
  so that the number does not depend on countryIso to be read.
  ``externalId`` is not in the POST parameters but is a contact filter in
  Databases → GET /api/rest/contacts, so it is read and passed on.
* ``mail``: mail-api-4-contacts.txt → Single Add (first_name, last_name,
  email*, alt_email, country, state, city, address_line1, address_line2,
  state_province_region, postal_code) and → Contact List (``custom_field``,
  an object by key). → Upload CSV says nothing about columns, so the same
  names are used; country is kept as text (Single Add wants a country id,
  which the pipeline resolves, not this reader).

File-level problems (unreadable, empty, binary, no contact column, bad
``--map``, a line over 1 MB) raise ``InvalidJob`` with ``file:`` or ``map:``;
a bad row never stops the file, it is yielded refused with its reason.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from hashlib import blake2b
from typing import Any, Final

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException

from jobs.errors import InvalidJob

__all__ = [
    "MAIL_FIELDS",
    "MAX_LINE",
    "MESSAGING_FIELDS",
    "TARGETS",
    "ContactFile",
    "ImportOptions",
    "Row",
    "normalise_header",
]

TARGETS: Final = ("messaging", "mail")
# messaging-api.txt → Databases → POST /api/rest/contacts (externalId: → GET filters).
MESSAGING_FIELDS: Final = (
    "email",
    "phone",
    "landline",
    "countryIso",
    "name",
    "surname",
    "externalId",
)
# mail-api-4-contacts.txt → Single Add (body params) and → Contact List (the same names).
MAIL_FIELDS: Final = (
    "first_name",
    "last_name",
    "email",
    "alt_email",
    "country",
    "state",
    "city",
    "address_line1",
    "address_line2",
    "state_province_region",
    "postal_code",
)
FIELDS: Final[dict[str, tuple[str, ...]]] = {"messaging": MESSAGING_FIELDS, "mail": MAIL_FIELDS}

# A file needs at least one of these columns to be a contact file at all.
# messaging-api.txt → POST /api/rest/contacts: email, phone or landline ("Required when
# ... is not specified"); mail-api-4-contacts.txt → Single Add: email* is required.
CONTACT_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "messaging": ("email", "phone", "landline"),
    "mail": ("email",),
}

# Header names people use for each field, matched after normalise_header() (case, spaces
# and punctuation ignored). The field's own name always matches too. Fields: see
# messaging-api.txt → Databases → POST /api/rest/contacts and mail-api-4-contacts.txt →
# Single Add.
HEADER_ALIASES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "messaging": {
        "email": ("E-mail", "Mail", "Email address", "E-mail address"),
        "phone": (
            "Mobile",
            "Cell",
            "Phone number",
            "Mobile phone",
            "Mobile number",
            "Cell phone",
            "Telephone",
        ),
        "landline": ("Landline phone", "Landline number", "Home phone"),
        "countryIso": ("Country", "Country code", "ISO", "Country ISO"),
        "name": ("First name", "Given name"),
        "surname": ("Last name", "Family name"),
        "externalId": ("External ID", "id"),
    },
    "mail": {
        "first_name": ("First name", "Name", "Given name"),
        "last_name": ("Last name", "Surname", "Family name"),
        "email": ("E-mail", "Mail", "Email address", "E-mail address"),
        "alt_email": ("Alternative email", "Alternate email", "Alt email", "Secondary email"),
        "country": (),
        "state": (),
        "city": ("Town",),
        "address_line1": ("Address", "Address line 1", "Street"),
        "address_line2": ("Address line 2",),
        "state_province_region": ("Region", "Province", "State/Province/Region"),
        "postal_code": ("Zip", "Zip code", "Postcode", "Postal code"),
    },
}

SKIP: Final = "-"  # mapping value of a column that is ignored
CUSTOM: Final = "custom:"  # mapping value prefix of a custom field

SAMPLE_BYTES: Final = 64 * 1024  # encoding and delimiter are decided on this much
MAX_LINE: Final = 1024 * 1024  # characters; a longer line is not a contact file
SNIFF_RECORDS: Final = 50  # header plus this many lines decide the delimiter
DELIMITERS: Final = (",", ";", "\t", "|")  # candidates, in order of preference on a tie
DELIMITER_NAMES: Final = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}

# Files that are not text, by their first bytes, to say what they are instead.
SIGNATURES: Final = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?): save it as CSV"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook: save it as CSV"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
)

# Country spellings that are not ISO 3166 alpha-2 but that people write for one.
COUNTRY_ALIASES: Final = {"UK": "GB"}

# Custom field types: messaging-api.txt → POST /api/rest/contacts → customFields[]type
# ("string, date, decimal. For date fields the value must be in ISO8601 format").
_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
# No leading zeros (a postcode such as 08001 must stay text) and at most 15 digits (a
# longer number would not survive a round trip through a double: card or account numbers).
_DECIMAL = re.compile(r"[+-]?(?:0|[1-9]\d*)(?:\.\d+)?")
_MAX_DECIMAL_DIGITS: Final = 15
_NUMERIC_START = frozenset("0123456789+-")

# Undecodable bytes become lone surrogates (U+DC00 + byte) so that one bad row is refused
# with its number instead of ending the import; no valid text holds lone surrogates.
_MARK_ERRORS: Final = "bulksend.contact_rows.mark"


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(chr(0xDC00 + b) for b in bad), exc.end


codecs.register_error(_MARK_ERRORS, _mark_undecodable)


def normalise_header(name: str) -> str:
    """The name compared when matching headers: case folded, letters and digits only."""
    return "".join(ch for ch in name.casefold() if ch.isalnum())


@dataclass(frozen=True)
class ImportOptions:
    """How to read a contact file; every field has a working default."""

    target: str = "messaging"  # "messaging" | "mail"
    country: str | None = None  # default ISO 3166 alpha-2 region for national phone numbers
    mapping: tuple[tuple[str, str], ...] = ()  # (COLUMN, FIELD) overrides from --map COLUMN=FIELD
    encoding: str | None = None  # override the detected encoding
    delimiter: str | None = None  # override the sniffed delimiter


DEFAULT_OPTIONS: Final = ImportOptions()


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of the file: the contact it makes, or why it is refused."""

    number: int  # the row number a spreadsheet shows (the header is row 1)
    cells: dict[str, str]  # the row as it was in the file, by header name (for the report)
    contact: dict[str, Any] | None  # in the target API's field names; None when refused
    key: str | None  # identity for duplicates: international phone digits or lower-cased email
    error: str | None  # why refused, naming the field


class _Refused(Exception):
    """A row refused; the message names the field."""


class _LineTooLong(Exception):
    """A physical line longer than MAX_LINE characters."""


# --- countries --------------------------------------------------------------------------


@cache
def _country_names() -> dict[str, str]:
    """Country names in every language phonenumbers knows, normalised, to ISO2 (built once)."""
    from phonenumbers.geodata.locale import LOCALE_DATA  # ~0.5 s: only when a name is used

    names: dict[str, str] = {}
    for region, by_language in LOCALE_DATA.items():
        if region not in phonenumbers.SUPPORTED_REGIONS:
            continue
        for language in ("en", *by_language):  # English wins a clash between languages
            name = by_language.get(language, "")
            for _ in range(4):  # "*aa" means "the same as language aa"
                if not name.startswith("*"):
                    break
                name = by_language.get(name[1:], "")
            if name:
                names.setdefault(normalise_header(name), region)
    return names


def resolve_country(text: str) -> str | None:
    """The ISO 3166 alpha-2 code for an ISO2 code, a calling code (34, +34) or a country name."""
    value = text.strip()
    upper = value.upper()
    if len(upper) == 2 and upper.isalpha():
        return upper if upper in phonenumbers.SUPPORTED_REGIONS else COUNTRY_ALIASES.get(upper)
    digits = value.removeprefix("+")
    if digits.startswith("00"):
        digits = digits[2:]
    if digits.isdigit():
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits), ())
        # The first region of a shared calling code is its main country (1 → US, 44 → GB).
        return regions[0] if regions and regions[0] != "001" else None
    return _country_names().get(normalise_header(value)) if value else None


# --- field checks -----------------------------------------------------------------------


def _phone(field: str, text: str, region: str | None) -> phonenumbers.PhoneNumber:
    """The number in a cell; national forms are read in ``region``. Raises _Refused."""
    value = "+" + text[2:] if text.startswith("00") else text
    international = value.startswith("+")
    if not international and region is None:
        raise _Refused(f"{field}: {text} has no country: add a countryIso column or --country")
    try:
        number = phonenumbers.parse(value, None if international else region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.NOT_A_NUMBER:
            raise _Refused(f"{field}: {text} is not a phone number") from None
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            raise _Refused(f"{field}: {text} has an unknown country calling code") from None
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        where = "" if international else f" for {region}"
        raise _Refused(f"{field}: {text} is not a possible number{where}")
    return number


def _digits(number: phonenumbers.PhoneNumber) -> str:
    """International digits without ``+`` (E.164 less the plus), e.g. 34666555444."""
    zeros = "0" * (number.number_of_leading_zeros or 1) if number.italian_leading_zero else ""
    return f"{number.country_code}{zeros}{number.national_number}"


def _number_region(number: phonenumbers.PhoneNumber) -> str | None:
    region = phonenumbers.region_code_for_number(number)
    if region in (None, "ZZ", "001"):
        region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    return None if region in (None, "ZZ", "001") else region


def _email(field: str, text: str) -> str:
    """The normalized address (domain lower-cased, Unicode NFC). Raises _Refused."""
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise _Refused(f"{field}: {exc}") from None


def custom_type(value: str) -> str:
    """The customFields[]type for a non-empty cell: "date", "decimal" or "string"."""
    if value[0] not in _NUMERIC_START:
        return "string"
    if _DECIMAL.fullmatch(value):
        digits = len(value) - (value[0] in "+-") - ("." in value)
        return "decimal" if digits <= _MAX_DECIMAL_DIGITS else "string"
    if _DATE.fullmatch(value):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return "string"  # 2024-13-45 looks like a date but is not one
        return "date"
    return "string"


# --- duplicates -------------------------------------------------------------------------


class _SeenKeys:
    """Keys seen so far with their first row: open addressing over two flat arrays.

    8-byte blake2b digests (a collision among a million keys has odds of about 1 in
    40 million) and 4-byte row numbers, at most half full: about 24 bytes a contact,
    against well over 100 for a dict of Python ints.
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._mask = capacity - 1
        self._digests = array("Q", bytes(8 * capacity))
        self._rows = array("I", bytes(4 * capacity))
        self._count = 0

    def first_row(self, key: str, row: int) -> int | None:
        """The row that had ``key`` before, or None after recording it for ``row``."""
        digest = blake2b(key.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little") or 1  # 0 marks an empty slot
        digests, mask = self._digests, self._mask
        slot = value & mask
        while True:
            found = digests[slot]
            if found == value:
                return self._rows[slot]
            if found == 0:
                digests[slot] = value
                self._rows[slot] = row
                self._count += 1
                if self._count * 2 > mask:
                    self._grow()
                return None
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old = zip(self._digests, self._rows, strict=True)
        capacity = (self._mask + 1) * 2
        self._mask = mask = capacity - 1
        self._digests = digests = array("Q", bytes(8 * capacity))
        self._rows = rows = array("I", bytes(4 * capacity))
        for value, row in old:
            if value:
                slot = value & mask
                while digests[slot]:
                    slot = (slot + 1) & mask
                digests[slot] = value
                rows[slot] = row


# --- file level -------------------------------------------------------------------------


def _detect_encoding(sample: bytes, complete: bool) -> str:
    """UTF-16 or UTF-8 by byte-order mark, else UTF-8 if the sample decodes, else cp1252."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # the codec reads the mark and the byte order from it
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _not_text(sample: bytes) -> str:
    for signature, what in SIGNATURES:
        if sample.startswith(signature):
            return f"looks like {what}, not a CSV text file"
    odd_nuls = sample[1::2].count(0)
    if odd_nuls > len(sample) // 5 and sample[0::2].count(0) < odd_nuls // 10:
        return "has NUL bytes: UTF-16 LE without a byte-order mark? pass --encoding utf-16-le"
    return "has NUL bytes: a binary file, not a CSV text file"


def _reader(lines: Iterator[str], delimiter: str) -> Iterator[list[str]]:
    return csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)


def _sniff_delimiter(text: str, complete: bool) -> str:
    """The candidate that splits the header into most fields the most lines agree with."""
    stream = io.StringIO(text, newline="")  # universal newlines, untranslated, as csv needs
    lines = [line for _, line in zip(range(SNIFF_RECORDS + 2), stream, strict=False)]
    if not complete and len(lines) > 1:
        lines.pop()  # the sample may have cut the last line short
    best, best_score = ",", (-1.0, 0, 0)
    for order, delimiter in enumerate(DELIMITERS):
        try:
            records = [r for r in _reader(iter(lines), delimiter) if "".join(r).strip()]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width, rest = len(records[0]), records[1:]
        agree = sum(len(r) == width for r in rest) / len(rest) if rest else 1.0
        score = (agree, width, -order)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _lines(stream: io.TextIOBase) -> Iterator[str]:
    """Physical lines (CRLF, LF or CR ends kept), none longer than MAX_LINE characters."""
    readline = stream.readline
    limit = MAX_LINE + 2  # room for the line end
    while line := readline(limit):
        if len(line) > MAX_LINE and len(line.rstrip("\r\n")) > MAX_LINE:
            raise _LineTooLong
        yield line


def _is_blank(record: list[str]) -> bool:
    return not "".join(record).strip()


def _bad_bytes(text: str) -> list[int]:
    """The undecodable bytes _mark_undecodable left in ``text`` (lone surrogates)."""
    if text.isascii():
        return []
    try:
        text.encode("utf-8")  # fails on lone surrogates only, at C speed
    except UnicodeEncodeError:
        return [ord(ch) - 0xDC00 for ch in text if "\udc00" <= ch <= "\udfff"]
    return []


def _unmark(text: str) -> str:
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


Builder = Callable[[list[str]], tuple[dict[str, Any], str]]


class ContactFile:
    """A contact CSV file, opened and checked; ``rows()`` streams its data rows.

    The constructor reads only the first 64 KB (encoding, delimiter) and the header,
    and raises ``InvalidJob`` for a file that cannot be a contact file at all.
    """

    encoding: str
    delimiter: str
    header: list[str]
    mapping: dict[str, str]

    def __init__(
        self, path: str | os.PathLike[str], options: ImportOptions = DEFAULT_OPTIONS
    ) -> None:
        self.path = os.fspath(path)
        self.options = options
        if options.target not in TARGETS:
            raise InvalidJob(f"target: {options.target!r} must be one of {', '.join(TARGETS)}")
        self.default_country: str | None = None
        if options.country is not None:
            self.default_country = resolve_country(options.country)
            if self.default_country is None:
                raise InvalidJob(
                    f"country: {options.country!r} is not a country: "
                    "use a two-letter ISO code such as ES"
                )
        name = os.path.basename(self.path)
        try:
            with open(self.path, "rb") as fh:
                sample = fh.read(SAMPLE_BYTES)
                complete = len(sample) < SAMPLE_BYTES or not fh.read(1)
        except OSError as exc:
            raise InvalidJob(f"file: cannot read {self.path}: {exc.strerror or exc}") from None
        if not sample:
            raise InvalidJob(f"file: {name} is empty")
        self.encoding = self._encoding(sample, complete, name)
        try:
            text = codecs.getincrementaldecoder(self.encoding)().decode(sample, final=complete)
        except UnicodeDecodeError as exc:
            bad = sample[exc.start : exc.start + 1].hex()
            raise InvalidJob(
                f"file: {name} is not {self.encoding} text (byte 0x{bad} at offset {exc.start})"
            ) from None
        if "\x00" in text:
            raise InvalidJob(f"file: {name} {_not_text(sample)}")
        if not text.strip("\ufeff \t\r\n"):
            raise InvalidJob(f"file: {name} is empty (no header line)")
        self.delimiter = self._delimiter(text, complete)
        self._header_row, raw_header = self._read_header(name)
        self.header, unnamed = self._names(raw_header)
        self.mapping = _build_mapping(self.header, unnamed, options.target, options.mapping)
        needed = CONTACT_COLUMNS[options.target]
        if not any(field in needed for field in self.mapping.values()):
            found = ", ".join(repr(column) for column in self.header)
            wanted = " or ".join((", ".join(needed[:-1]), needed[-1])).removeprefix(" or ")
            raise InvalidJob(
                f"file: no contact column: the header needs an {wanted} column "
                f"(found {found}); name one with --map COLUMN=FIELD"
            )

    # -- opening --

    def _encoding(self, sample: bytes, complete: bool, name: str) -> str:
        wanted = self.options.encoding
        if wanted is None:
            for signature, what in SIGNATURES:
                if sample.startswith(signature):
                    raise InvalidJob(f"file: {name} looks like {what}, not a CSV text file")
            encoding = _detect_encoding(sample, complete)
            if encoding != "utf-16" and b"\x00" in sample:
                raise InvalidJob(f"file: {name} {_not_text(sample)}")
            if encoding == "cp1252":
                try:
                    sample.decode("cp1252")
                except UnicodeDecodeError as exc:
                    bad = sample[exc.start : exc.start + 1].hex()
                    raise InvalidJob(
                        f"file: {name} is not text: byte 0x{bad} at offset {exc.start} "
                        "is neither UTF-8 nor cp1252 (pass --encoding if you know it)"
                    ) from None
            return encoding
        try:
            canonical = codecs.lookup(wanted).name
        except LookupError:
            raise InvalidJob(f"file: unknown encoding {wanted!r}") from None
        if canonical == "utf-8" and sample.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        return canonical

    def _delimiter(self, text: str, complete: bool) -> str:
        wanted = self.options.delimiter
        if wanted is None:
            return _sniff_delimiter(text, complete)
        delimiter = DELIMITER_NAMES.get(wanted.lower(), wanted)
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise InvalidJob(
                f"file: delimiter {wanted!r} must be one character (or tab, comma, semicolon, pipe)"
            )
        return delimiter

    def _open(self) -> io.TextIOWrapper:
        return open(  # closed by the callers' with blocks
            self.path,
            encoding=self.encoding,
            errors=_MARK_ERRORS,
            newline="",
            buffering=1 << 16,
        )

    def _read_header(self, name: str) -> tuple[int, list[str]]:
        """The header's row number (blank lines before it count) and its cells."""
        number = 0
        try:
            with self._open() as stream:
                for record in _reader(_lines(stream), self.delimiter):
                    number += 1
                    if not _is_blank(record):
                        if _bad_bytes("".join(record)):
                            raise InvalidJob(
                                f"file: the header of {name} is not valid {self.encoding} text"
                            )
                        return number, record
        except _LineTooLong:
            raise InvalidJob(
                f"file: line {number + 1} of {name} is longer than 1 MB "
                f"({MAX_LINE} characters): not a contact CSV file"
            ) from None
        except csv.Error as exc:
            raise InvalidJob(f"file: the header of {name} cannot be read: {exc}") from None
        except OSError as exc:
            raise InvalidJob(f"file: cannot read {self.path}: {exc.strerror or exc}") from None
        raise InvalidJob(f"file: {name} is empty (no header line)")

    @staticmethod
    def _names(raw: list[str]) -> tuple[list[str], set[str]]:
        """Header names (stripped; an empty one is called "column N") and the unnamed ones."""
        names: list[str] = []
        unnamed: set[str] = set()
        seen: dict[str, int] = {}
        for index, cell in enumerate(raw, 1):
            column = cell.lstrip("\ufeff").strip() if index == 1 else cell.strip()
            if not column:
                column = f"column {index}"
                unnamed.add(column)
            if column in seen:
                raise InvalidJob(
                    f"file: the header has {column!r} twice (columns {seen[column]} and {index})"
                )
            seen[column] = index
            names.append(column)
        return names, unnamed

    # -- reading --

    def describe(self) -> dict[str, Any]:
        """What was detected and decided, for --dry-run."""
        return {
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "mapping": dict(self.mapping),
            "header": list(self.header),
        }

    def rows(self) -> Iterator[Row]:
        """Every non-blank data row, in file order; each call reads the file again.

        Raises ``InvalidJob`` if a line is longer than 1 MB or a quoted cell runs past
        the csv module's field limit (usually a closing quote missing): past that point
        the rows cannot be told apart.
        """
        header = self.header
        width = len(header)
        build = self._messaging() if self.options.target == "messaging" else self._mail()
        seen = _SeenKeys()
        first_row = seen.first_row
        encoding = self.encoding
        number = 0
        try:
            with self._open() as stream:
                records = _reader(_lines(stream), self.delimiter)
                number = self._header_row
                for _ in zip(range(number), records, strict=False):
                    pass  # the header and any blank lines above it
                for record in records:
                    number += 1
                    joined = "".join(record)
                    if not joined.strip():
                        continue  # a blank line, or a row of empty cells: counted, not a row
                    size = len(record)
                    if size != width:
                        if size < width:
                            record += [""] * (width - size)
                        elif _is_blank(record[width:]):
                            del record[width:]
                        else:
                            names = header + [f"column {i}" for i in range(width + 1, size + 1)]
                            cells = dict(zip(names, record, strict=True))
                            error = f"row has {size} fields, the header has {width}"
                            yield Row(number, _clean(cells, joined), None, None, error)
                            continue
                    cells = dict(zip(header, record, strict=True))
                    if bad := _bad_bytes(joined):
                        shown = ", ".join(f"0x{b:02x}" for b in bad[:3])
                        error = (
                            f"row: bytes not valid {encoding} ({shown}); "
                            "pass --encoding if the file uses another one"
                        )
                        yield Row(number, _clean(cells, joined), None, None, error)
                        continue
                    try:
                        contact, key = build(record)
                    except _Refused as exc:
                        yield Row(number, cells, None, None, str(exc))
                        continue
                    earlier = first_row(key, number)
                    if earlier is not None:
                        yield Row(number, cells, None, key, f"duplicate of row {earlier}")
                    else:
                        yield Row(number, cells, contact, key, None)
        except _LineTooLong:
            raise InvalidJob(
                f"file: row {number + 1} has a line longer than 1 MB ({MAX_LINE} characters)"
            ) from None
        except csv.Error as exc:
            raise InvalidJob(
                f"file: row {number + 1} cannot be read ({exc}): is a closing quote missing?"
            ) from None
        except OSError as exc:
            raise InvalidJob(f"file: cannot read {self.path}: {exc.strerror or exc}") from None

    # -- row builders: indexes looked up once, closures for fast local access --

    def _columns(self) -> tuple[dict[str, int], list[tuple[int, str]]]:
        fields: dict[str, int] = {}
        custom: list[tuple[int, str]] = []
        for index, column in enumerate(self.header):
            target = self.mapping[column]
            if target.startswith(CUSTOM):
                custom.append((index, target.removeprefix(CUSTOM)))
            elif target != SKIP:
                fields[target] = index
        return fields, custom

    def _messaging(self) -> Builder:
        """messaging-api.txt → Databases → POST /api/rest/contacts."""
        fields, custom = self._columns()
        email_at = fields.pop("email", None)
        phone_at = fields.pop("phone", None)
        landline_at = fields.pop("landline", None)
        country_at = fields.pop("countryIso", None)
        text = tuple((index, field) for field, index in fields.items())
        default = self.default_country
        countries: dict[str, str | None] = {}

        def build(record: list[str]) -> tuple[dict[str, Any], str]:
            contact: dict[str, Any] = {}
            country = None
            if country_at is not None:
                raw = record[country_at].strip()
                if raw:
                    if raw in countries:
                        country = countries[raw]
                    else:
                        country = resolve_country(raw)
                        if len(countries) < 1024:
                            countries[raw] = country
                    if country is None:
                        raise _Refused(
                            f"countryIso: {raw} is not a country: use a two-letter ISO code"
                        )
            region = country or default
            key = phone = landline = None
            if phone_at is not None and (raw := record[phone_at].strip()):
                phone = _phone("phone", raw, region)
                contact["phone"] = key = _digits(phone)
            if landline_at is not None and (raw := record[landline_at].strip()):
                landline = _phone("landline", raw, region)
                contact["landline"] = _digits(landline)
            if email_at is not None and (raw := record[email_at].strip()):
                contact["email"] = email = _email("email", raw)
                if key is None:
                    key = email.lower()
            if key is None:
                if landline is None:
                    raise _Refused("row: needs an email, phone or landline")
                key = contact["landline"]
            number = phone if phone is not None else landline
            if number is not None:
                # Required with a phone or landline: the row's, else --country, else the
                # country of an international number.
                region = region or _number_region(number)
                if region is None:
                    raise _Refused("countryIso: required with a phone: add a countryIso column")
                contact["countryIso"] = region
            elif country is not None:
                contact["countryIso"] = country
            for index, field in text:
                if value := record[index].strip():
                    contact[field] = value
            extra = [
                {"key": name, "type": custom_type(value), "value": value}
                for index, name in custom
                if (value := record[index].strip())
            ]
            if extra:
                contact["customFields"] = extra
            return contact, key

        return build

    def _mail(self) -> Builder:
        """mail-api-4-contacts.txt → Single Add fields, → Contact List custom_field."""
        fields, custom = self._columns()
        email_at = fields.pop("email")
        alt_at = fields.pop("alt_email", None)
        text = tuple((index, field) for field, index in fields.items())

        def build(record: list[str]) -> tuple[dict[str, Any], str]:
            raw = record[email_at].strip()
            if not raw:
                raise _Refused("row: needs an email")
            email = _email("email", raw)
            contact: dict[str, Any] = {"email": email}
            if alt_at is not None and (raw := record[alt_at].strip()):
                contact["alt_email"] = _email("alt_email", raw)
            for index, field in text:
                if value := record[index].strip():
                    contact[field] = value
            extra = {name: value for index, name in custom if (value := record[index].strip())}
            if extra:
                contact["custom_field"] = extra
            return contact, email.lower()

        return build


def _clean(cells: dict[str, str], joined: str) -> dict[str, str]:
    """Cells safe to write back: undecodable bytes shown as U+FFFD."""
    if not _bad_bytes(joined):
        return cells
    return {name: _unmark(value) for name, value in cells.items()}


# --- mapping ----------------------------------------------------------------------------


@cache
def _alias_index(target: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for field, aliases in HEADER_ALIASES[target].items():
        for alias in (field, *aliases):
            index.setdefault(normalise_header(alias), field)
    return index


def _map_field(target: str, field: str, column: str) -> str:
    """A --map FIELD as a mapping value: a target field, custom:<key> or SKIP."""
    value = field.strip()
    if value.lower() in (SKIP, "skip"):
        return SKIP
    if value.lower() == "custom" or value.lower().startswith(CUSTOM):
        return CUSTOM + (value[len(CUSTOM) :].strip() or column)
    wanted = normalise_header(value)
    for name in FIELDS[target]:
        if normalise_header(name) == wanted:
            return name
    valid = ", ".join(FIELDS[target])
    raise InvalidJob(
        f"map: unknown field {field!r} for {target}: use one of {valid}, custom:<key> or skip"
    )


def _map_column(header: list[str], column: str) -> str:
    """The header column a --map COLUMN names: exactly, else the one matching normalised."""
    wanted = column.strip()
    if wanted in header:
        return wanted
    close = [name for name in header if normalise_header(name) == normalise_header(wanted)]
    if len(close) == 1:
        return close[0]
    found = ", ".join(repr(name) for name in header)
    raise InvalidJob(f"map: no column {column!r} in the header (columns: {found})")


def _build_mapping(
    header: list[str], unnamed: set[str], target: str, overrides: tuple[tuple[str, str], ...]
) -> dict[str, str]:
    """Header column → target field, ``custom:<key>`` or ``-`` (skipped)."""
    explicit: dict[str, str] = {}
    for column, field in overrides:
        name = _map_column(header, column)
        if name in explicit:
            raise InvalidJob(f"map: column {name!r} is mapped twice")
        explicit[name] = _map_field(target, field, name)
    aliases = _alias_index(target)
    mapping: dict[str, str] = {}
    for column in header:
        if column in explicit:
            mapping[column] = explicit[column]
        elif column in unnamed:
            mapping[column] = SKIP  # no name in the header: nothing to call it
        else:
            mapping[column] = aliases.get(normalise_header(column), CUSTOM + column)
    owner: dict[str, str] = {}
    for column, field in mapping.items():
        if field == SKIP or field.startswith(CUSTOM):
            continue
        other = owner.get(field)
        if other is None:
            owner[field] = column
        elif other in explicit and column in explicit:
            raise InvalidJob(f"map: columns {other!r} and {column!r} both map to {field}")
        elif other in explicit or column in explicit:
            loser = column if other in explicit else other
            mapping[loser] = CUSTOM + loser  # the --map choice wins; the other is kept as data
            owner[field] = other if other in explicit else column
        else:
            raise InvalidJob(
                f"map: columns {other!r} and {column!r} both map to {field}: "
                f"choose with --map '{column}=custom' (or another field, or skip)"
            )
    return mapping

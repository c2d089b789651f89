"""jobs.contact_rows on a corpus of awkward contact files (tests/data/contacts/).

Each file is small and holds one kind of trouble that real exports have; the
tests assert the exact row numbers (as a spreadsheet shows them), contacts and
messages. Files that are big or awkward to commit (10 MB lines, 64 KB samples)
are written to tmp_path by the test itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs.contact_rows import DEFAULT_OPTIONS, MAX_LINE, ContactFile, ImportOptions, Row, _SeenKeys
from jobs.errors import InvalidJob

DATA = Path(__file__).parent / "data" / "contacts"
ES = ImportOptions(country="ES")
MAIL = ImportOptions(target="mail")


def read(name: str | Path, options: ImportOptions = DEFAULT_OPTIONS) -> list[Row]:
    return list(ContactFile(DATA / name, options).rows())


def outcome(rows: list[Row]) -> list[tuple[int, Any]]:
    """(row number, contact or error) for each row: what a test reads at a glance."""
    return [(row.number, row.error if row.error else row.contact) for row in rows]


def refused(name: str | Path, options: ImportOptions = DEFAULT_OPTIONS) -> str:
    with pytest.raises(InvalidJob) as caught:
        ContactFile(DATA / name, options)
    return str(caught.value)


# --- encodings ---------------------------------------------------------------------------


def test_utf8_with_bom_and_crlf() -> None:
    contacts = ContactFile(DATA / "utf8_bom.csv")
    assert contacts.describe() == {
        "encoding": "utf-8-sig",
        "delimiter": ",",
        "header": ["Email", "Mobile", "Country", "First name", "Last name"],
        "mapping": {
            "Email": "email",
            "Mobile": "phone",
            "Country": "countryIso",
            "First name": "name",
            "Last name": "surname",
        },
    }
    rows = list(contacts.rows())
    assert outcome(rows) == [
        (
            2,
            {
                "email": "ana@example.com",
                "phone": "34666555444",
                "countryIso": "ES",
                "name": "Ana",
                "surname": "Pérez",
            },
        ),
        (3, {"phone": "447911123456", "countryIso": "GB", "name": "Ben", "surname": "Smith"}),
    ]
    assert rows[0].key == "34666555444"
    assert rows[0].cells == {
        "Email": "ana@example.com",
        "Mobile": "666 555 444",
        "Country": "ES",
        "First name": "Ana",
        "Last name": "Pérez",
    }


def test_excel_unicode_text_is_utf16_le_tab_separated() -> None:
    contacts = ContactFile(DATA / "excel_unicode.txt")
    assert (contacts.encoding, contacts.delimiter) == ("utf-16", "\t")
    assert contacts.header == ["E-mail", "Phone number", "Name", "Surname", "City"]
    assert outcome(list(contacts.rows())) == [
        (
            2,
            {
                "email": "zoë@example.com",
                "phone": "34666555444",
                "countryIso": "ES",  # no country column or option: the number's own country
                "name": "Zoë",
                "surname": "Müller",
                "customFields": [{"key": "City", "type": "string", "value": "Málaga"}],
            },
        ),
        (
            3,
            {
                "email": "li@example.com",
                "name": "Li",
                "surname": "Wang\tJr.",  # a quoted tab is data
                "customFields": [{"key": "City", "type": "string", "value": "北京"}],
            },
        ),
    ]


def test_utf16_big_endian_with_bom() -> None:
    contacts = ContactFile(DATA / "utf16be.csv")
    assert contacts.encoding == "utf-16"
    assert outcome(list(contacts.rows())) == [(2, {"email": "bob@example.com", "name": "Bøb"})]


def test_utf16_without_bom_is_refused_with_a_hint_and_read_with_encoding() -> None:
    assert refused("utf16le_nobom.csv") == (
        "file: utf16le_nobom.csv has NUL bytes: UTF-16 LE without a byte-order mark? "
        "pass --encoding utf-16-le"
    )
    rows = read("utf16le_nobom.csv", ImportOptions(encoding="utf-16-le"))
    assert outcome(rows) == [(2, {"email": "ana@example.com", "name": "Ana"})]


def test_cp1252_when_not_utf8_semicolons_and_commas_in_cells() -> None:
    contacts = ContactFile(DATA / "cp1252.csv", ES)
    assert (contacts.encoding, contacts.delimiter) == ("cp1252", ";")
    assert outcome(list(contacts.rows())) == [
        (
            2,
            {
                "name": "José",
                "surname": "Muñoz, Jr.",
                "email": "jose@example.es",
                "phone": "34612345678",
                "countryIso": "ES",
                "customFields": [{"key": "Ciudad", "type": "string", "value": "Cádiz"}],
            },
        ),
        (
            3,
            {
                "name": "Begoña",
                "surname": "Ibáñez",
                "email": "bego@example.es",
                "customFields": [{"key": "Ciudad", "type": "string", "value": "Logroño"}],
            },
        ),
    ]


def test_encoding_override_that_does_not_fit_is_refused() -> None:
    assert refused("cp1252.csv", ImportOptions(encoding="utf-8")) == (
        "file: cp1252.csv is not utf-8 text (byte 0xe9 at offset 36)"
    )
    assert refused("cp1252.csv", ImportOptions(encoding="klingon")) == (
        "file: unknown encoding 'klingon'"
    )


def test_bad_bytes_after_the_sample_refuse_only_their_row(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    filler = b"".join(b"user%05d@example.com,Ana\n" % i for i in range(3000))  # > 64 KB
    path.write_bytes(b"email,name\n" + filler + b"jose@example.es,Jos\xe9\nz@example.com,Zoe\n")
    contacts = ContactFile(path)
    assert contacts.encoding == "utf-8"
    rows = list(contacts.rows())
    assert len(rows) == 3002
    bad, last = rows[-2], rows[-1]
    assert (bad.number, bad.contact, bad.key) == (3002, None, None)
    assert (
        bad.error
        == "row: bytes not valid utf-8 (0xe9); pass --encoding if the file uses another one"
    )
    assert bad.cells == {"email": "jose@example.es", "name": "Jos\ufffd"}
    assert (last.number, last.contact) == (3003, {"email": "z@example.com", "name": "Zoe"})


# --- not contact files -------------------------------------------------------------------


def test_empty_file() -> None:
    assert refused("empty.csv") == "file: empty.csv is empty"
    assert refused("blank_only.csv") == "file: blank_only.csv is empty (no header line)"


def test_binary_files() -> None:
    assert (
        refused("binary.dat")
        == "file: binary.dat has NUL bytes: a binary file, not a CSV text file"
    )
    assert refused("fake_workbook.csv") == (
        "file: fake_workbook.csv looks like a ZIP archive (an Excel .xlsx workbook?): "
        "save it as CSV, not a CSV text file"
    )
    assert refused("not_text.csv") == (
        "file: not_text.csv is not text: byte 0x81 at offset 7 is neither UTF-8 nor cp1252 "
        "(pass --encoding if you know it)"
    )


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert refused(tmp_path / "nope.csv") == (
        f"file: cannot read {tmp_path / 'nope.csv'}: No such file or directory"
    )
    assert refused(tmp_path) == f"file: cannot read {tmp_path}: Is a directory"


def test_a_10_mb_single_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "one_line.csv"
    path.write_bytes(b"email," + b"x" * (10 * 1024 * 1024))
    assert refused(path) == (
        f"file: line 1 of one_line.csv is longer than 1 MB ({MAX_LINE} characters): "
        "not a contact CSV file"
    )


def test_a_long_line_among_the_rows_stops_the_file(tmp_path: Path) -> None:
    path = tmp_path / "long_row.csv"
    path.write_bytes(b"email,notes\na@example.com,x\nb@example.com," + b"y" * (2 * MAX_LINE))
    rows = ContactFile(path).rows()
    assert next(rows).number == 2
    with pytest.raises(InvalidJob) as caught:
        next(rows)
    assert str(caught.value) == (f"file: row 3 has a line longer than 1 MB ({MAX_LINE} characters)")


def test_a_missing_closing_quote_stops_the_file(tmp_path: Path) -> None:
    path = tmp_path / "open_quote.csv"
    body = b"".join(b"u%06d@example.com,x\n" % i for i in range(10000))  # > 128 K characters
    path.write_bytes(b'email,notes\na@example.com,"oops\n' + body)
    with pytest.raises(InvalidJob) as caught:
        list(ContactFile(path).rows())
    assert str(caught.value) == (
        "file: row 2 cannot be read (field larger than field limit (131072)): "
        "is a closing quote missing?"
    )


def test_header_only_is_not_an_error() -> None:
    contacts = ContactFile(DATA / "header_only.csv")
    assert contacts.header == ["email", "phone"]
    assert list(contacts.rows()) == []


def test_no_contact_column() -> None:
    assert refused("no_contact.csv") == (
        "file: no contact column: the header needs an email, phone or landline column "
        "(found 'Nombre', 'Ciudad'); name one with --map COLUMN=FIELD"
    )
    assert refused("phones.csv", MAIL) == (
        "file: no contact column: the header needs an email column "
        "(found 'phone', 'landline', 'country', 'name'); name one with --map COLUMN=FIELD"
    )


def test_duplicate_header_names() -> None:
    assert refused("duplicate_header.csv") == (
        "file: the header has 'Notes' twice (columns 2 and 3)"
    )


def test_bad_options() -> None:
    assert refused("utf8_bom.csv", ImportOptions(target="sms")) == (
        "target: 'sms' must be one of messaging, mail"
    )
    assert refused("utf8_bom.csv", ImportOptions(country="Narnia")) == (
        "country: 'Narnia' is not a country: use a two-letter ISO code such as ES"
    )
    assert refused("utf8_bom.csv", ImportOptions(delimiter="::")) == (
        "file: delimiter '::' must be one character (or tab, comma, semicolon, pipe)"
    )


# --- delimiters and line structure -------------------------------------------------------


def test_pipe_delimiter_and_lower_case_country() -> None:
    contacts = ContactFile(DATA / "pipe.csv")
    assert contacts.delimiter == "|"
    assert outcome(list(contacts.rows())) == [
        (2, {"email": "ana@example.com", "phone": "34612345678", "countryIso": "ES"})
    ]


def test_tab_delimiter_with_commas_and_semicolons_in_cells() -> None:
    contacts = ContactFile(DATA / "tab.tsv")
    assert contacts.delimiter == "\t"
    notes = "likes, commas; and semicolons"
    assert outcome(list(contacts.rows())) == [
        (
            2,
            {
                "email": "ana@example.com",
                "name": "Ana",
                "customFields": [{"key": "notes", "type": "string", "value": notes}],
            },
        )
    ]


def test_delimiter_override() -> None:
    contacts = ContactFile(DATA / "tab.tsv", ImportOptions(delimiter="tab"))
    assert contacts.delimiter == "\t"
    assert refused("tab.tsv", ImportOptions(delimiter=";")) == (
        "file: no contact column: the header needs an email, phone or landline column "
        "(found 'email\\tname\\tnotes'); name one with --map COLUMN=FIELD"
    )


def test_quoted_commas_newlines_and_doubled_quotes_keep_spreadsheet_row_numbers() -> None:
    assert outcome(read("quoted.csv")) == [
        (
            2,
            {
                "email": "ana@example.com",
                "name": "Pérez, Ana",
                "customFields": [{"key": "notes", "type": "string", "value": 'said "hi"'}],
            },
        ),
        (
            3,
            {
                "email": "bob@example.com",
                "name": "Bob",
                "customFields": [
                    {"key": "notes", "type": "string", "value": "line one\r\nline two"}
                ],
            },
        ),
        (  # one record over two lines above: still row 4, as a spreadsheet shows it
            4,
            {
                "email": "carl@example.com",
                "name": "Carl",
                "customFields": [{"key": "notes", "type": "string", "value": "a,b,c"}],
            },
        ),
    ]


def test_bare_cr_line_ends() -> None:
    assert outcome(read("cr_only.csv")) == [
        (
            2,
            {
                "email": "ana@example.com",
                "name": "Ana",
                "customFields": [{"key": "notes", "type": "string", "value": "two\rlines"}],
            },
        ),
        (4, {"email": "bob@example.com", "name": "Bob"}),  # row 3 is blank
    ]


def test_blank_lines_are_skipped_but_counted() -> None:
    assert outcome(read("blank_lines.csv")) == [
        (3, {"email": "ana@example.com", "name": "Ana"}),
        (6, {"email": "bob@example.com", "name": "Bob"}),
    ]


def test_blank_lines_above_the_header_count_too(tmp_path: Path) -> None:
    path = tmp_path / "late_header.csv"
    path.write_bytes(b"\r\n\r\nemail,name\r\nana@example.com,Ana\r\n")
    assert outcome(list(ContactFile(path).rows())) == [
        (4, {"email": "ana@example.com", "name": "Ana"})
    ]


def test_too_many_fields_refused_fewer_fields_read_as_empty() -> None:
    rows = read("field_counts.csv")
    assert outcome(rows) == [
        (
            2,
            {
                "email": "ana@example.com",
                "name": "Ana",
                "customFields": [{"key": "city", "type": "string", "value": "Madrid"}],
            },
        ),
        (3, "row has 5 fields, the header has 3"),
        (4, {"email": "carl@example.com", "name": "Carl"}),
        (  # extra cells that are all empty (trailing delimiters) lose nothing
            5,
            {
                "email": "dan@example.com",
                "name": "Dan",
                "customFields": [{"key": "city", "type": "string", "value": "Rome"}],
            },
        ),
    ]
    assert rows[1].cells == {
        "email": "bob@example.com",
        "name": "Bob",
        "city": "Paris",
        "column 4": "extra",
        "column 5": "more",
    }
    assert rows[2].cells == {"email": "carl@example.com", "name": "Carl", "city": ""}


def test_crlf_across_read_buffers_and_rows_can_be_read_again(tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    lines = [f"u{i}@example.com,{600000000 + i}\r\n" for i in range(20000)]
    path.write_text("email,phone\r\n" + "".join(lines), encoding="utf-8", newline="")
    contacts = ContactFile(path, ES)
    for _ in range(2):  # each call reads the file again from the start
        rows = list(contacts.rows())
        assert [row.number for row in rows] == list(range(2, 20002))
        assert all(row.error is None for row in rows)
        assert rows[-1].contact == {
            "email": "u19999@example.com",
            "phone": "34600019999",
            "countryIso": "ES",
        }


# --- mapping -----------------------------------------------------------------------------


def test_map_overrides() -> None:
    mapping = (
        ("Movil", "phone"),
        ("correo", "Email"),  # column and field matched tolerant of case
        ("Pais", "countryIso"),
        ("Nombre", "name"),
        ("Tel casa", "landline"),
        ("Notas", "custom:note"),
        ("Basura", "skip"),
    )
    contacts = ContactFile(DATA / "spanish_header.csv", ImportOptions(mapping=mapping))
    assert contacts.mapping == {
        "Movil": "phone",
        "Correo": "email",
        "Pais": "countryIso",
        "Nombre": "name",
        "Tel casa": "landline",
        "Notas": "custom:note",
        "Basura": "-",
    }
    assert outcome(list(contacts.rows())) == [
        (
            2,
            {
                "phone": "34612345678",
                "email": "ana@example.com",
                "countryIso": "ES",
                "name": "Ana",
                "landline": "34912345678",
                "customFields": [{"key": "note", "type": "string", "value": "VIP"}],
            },
        )
    ]


def test_map_errors() -> None:
    assert refused("spanish_header.csv", ImportOptions(mapping=(("Movil", "mobile"),))) == (
        "map: unknown field 'mobile' for messaging: use one of email, phone, landline, "
        "countryIso, name, surname, externalId, custom:<key> or skip"
    )
    assert refused("spanish_header.csv", ImportOptions(mapping=(("Fax", "phone"),))) == (
        "map: no column 'Fax' in the header (columns: 'Movil', 'Correo', 'Pais', 'Nombre', "
        "'Tel casa', 'Notas', 'Basura')"
    )
    both = (("Movil", "phone"), ("Tel casa", "phone"))
    assert refused("spanish_header.csv", ImportOptions(mapping=both)) == (
        "map: columns 'Movil' and 'Tel casa' both map to phone"
    )
    mail = ImportOptions(target="mail", mapping=(("Correo", "phone"),))
    assert refused("spanish_header.csv", mail) == (
        "map: unknown field 'phone' for mail: use one of first_name, last_name, email, "
        "alt_email, country, state, city, address_line1, address_line2, "
        "state_province_region, postal_code, custom:<key> or skip"
    )


def test_two_columns_for_one_field() -> None:
    assert refused("two_phones.csv") == (
        "map: columns 'Phone' and 'Mobile' both map to phone: "
        "choose with --map 'Mobile=custom' (or another field, or skip)"
    )
    # --map decides; the other column is kept, as a custom field.
    contacts = ContactFile(
        DATA / "two_phones.csv", ImportOptions(country="ES", mapping=(("Mobile", "phone"),))
    )
    assert contacts.mapping == {"Phone": "custom:Phone", "Mobile": "phone", "email": "email"}
    assert outcome(list(contacts.rows())) == [
        (
            2,
            {
                "phone": "34699887766",
                "email": "ana@example.com",
                "countryIso": "ES",
                "customFields": [{"key": "Phone", "type": "decimal", "value": "612345678"}],
            },
        )
    ]


def test_header_names_people_use(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text(
        "E-Mail, Mobile phone ,Home phone,ISO,Given name,Family name,External ID,Colour,\n",
        encoding="utf-8",
    )
    assert ContactFile(path).mapping == {
        "E-Mail": "email",
        "Mobile phone": "phone",
        "Home phone": "landline",
        "ISO": "countryIso",
        "Given name": "name",
        "Family name": "surname",
        "External ID": "externalId",
        "Colour": "custom:Colour",
        "column 9": "-",  # an unnamed column (trailing delimiter) is skipped
    }
    path.write_text(
        "name,LAST_NAME,Email address,Alternative email,Address line 1,Postcode,"
        "State/Province/Region\n",
        encoding="utf-8",
    )
    assert ContactFile(path, MAIL).mapping == {
        "name": "first_name",
        "LAST_NAME": "last_name",
        "Email address": "email",
        "Alternative email": "alt_email",
        "Address line 1": "address_line1",
        "Postcode": "postal_code",
        "State/Province/Region": "state_province_region",
    }


# --- custom fields -----------------------------------------------------------------------


def test_custom_field_types() -> None:
    assert outcome(read("custom_fields.csv")) == [
        (
            2,
            {
                "email": "ana@example.com",
                "customFields": [
                    {"key": "Signup", "type": "date", "value": "2024-05-01"},
                    {"key": "Last visit", "type": "date", "value": "2024-05-01T10:00:00Z"},
                    {"key": "Score", "type": "decimal", "value": "12"},
                    {"key": "Balance", "type": "decimal", "value": "-3.5"},
                    {"key": "Postcode", "type": "string", "value": "08001"},  # leading zero
                    {"key": "Card", "type": "string", "value": "4111111111111111"},  # 16 digits
                    {"key": "Plan", "type": "string", "value": "gold"},
                    {"key": "Bad date", "type": "string", "value": "2024-13-45"},
                ],  # "Empty" is left out
            },
        )
    ]


# --- phones ------------------------------------------------------------------------------

PHONES_WITHOUT_DEFAULT = [
    (2, {"phone": "34666555444", "countryIso": "ES", "name": "a"}),
    (3, {"phone": "33612345678", "countryIso": "FR", "name": "b"}),
    (4, {"phone": "442079460958", "countryIso": "GB", "name": "c"}),
    (5, "phone: 612 34 56 78 has no country: add a countryIso column or --country"),
    (6, "phone: +34 12 is not a possible number"),
    (7, "phone: 12 is not a possible number for ES"),
    (8, {"landline": "34912345678", "countryIso": "ES", "name": "g"}),  # "Spain"
    (9, {"phone": "12025550143", "countryIso": "US", "name": "h"}),  # "+1"
    (10, "phone: abc is not a phone number"),
    (11, "countryIso: Narnia is not a country: use a two-letter ISO code"),
    (12, {"phone": "390612345678", "countryIso": "IT", "name": "k"}),  # Italian leading 0
    (13, {"phone": "34699887766", "countryIso": "ES", "name": "l"}),
    (14, "row: needs an email, phone or landline"),
]


def test_phones_national_and_international_with_row_country() -> None:
    assert outcome(read("phones.csv")) == PHONES_WITHOUT_DEFAULT


def test_phones_with_default_country() -> None:
    expected = dict(PHONES_WITHOUT_DEFAULT)
    expected[3] = {"phone": "33612345678", "countryIso": "ES", "name": "b"}  # --country wins
    expected[4] = {"phone": "442079460958", "countryIso": "ES", "name": "c"}
    expected[5] = {"phone": "34612345678", "countryIso": "ES", "name": "d"}
    expected[12] = {"phone": "390612345678", "countryIso": "ES", "name": "k"}
    assert outcome(read("phones.csv", ES)) == list(expected.items())


# --- emails ------------------------------------------------------------------------------


def test_emails_invalid_and_internationalised() -> None:
    rows = read("emails.csv")
    assert outcome(rows) == [
        (2, {"email": "Ana@example.com", "name": "a"}),
        (3, {"email": "josé@correo.es", "name": "b"}),
        (4, {"email": "用户@例子.广告", "name": "c"}),
        (5, "email: There must be something after the @-sign."),
        (6, "email: The email address contains invalid characters before the @-sign: SPACE."),
        (7, "email: The part after the @-sign is not valid. It should have a period."),
    ]
    assert [row.key for row in rows] == [
        "ana@example.com",
        "josé@correo.es",
        "用户@例子.广告",
        None,
        None,
        None,
    ]


# --- duplicates and formulas -------------------------------------------------------------


def test_duplicates_name_the_first_row() -> None:
    rows = read("duplicates.csv")
    assert outcome(rows) == [
        (2, {"email": "ana@example.com", "countryIso": "ES"}),
        (3, "duplicate of row 2"),
        (4, {"phone": "34666555444", "countryIso": "ES"}),
        (5, "duplicate of row 4"),
        (6, "duplicate of row 4"),
        # the key is the phone when there is one: not a duplicate of row 2's email
        (7, {"email": "ana@example.com", "phone": "34699887766", "countryIso": "ES"}),
    ]
    assert [row.key for row in rows] == [
        "ana@example.com",
        "ana@example.com",
        "34666555444",
        "34666555444",
        "34666555444",
        "34699887766",
    ]


def test_formula_looking_cells_are_data() -> None:
    rows = read("formulas.csv")
    assert outcome(rows) == [
        (
            2,
            {
                "email": "ana@example.com",
                "phone": "34666555444",
                "countryIso": "ES",
                "name": '=HYPERLINK("http://x")',
                "surname": "@SUM(A1)",
                "customFields": [{"key": "notes", "type": "string", "value": "-3+2"}],
            },
        ),
        (
            3,
            {
                "email": "bob@example.com",
                "name": "+cmd",
                "surname": "-",
                "customFields": [{"key": "notes", "type": "string", "value": "=1+2"}],
            },
        ),
    ]
    assert rows[0].cells["name"] == '=HYPERLINK("http://x")'


def test_seen_keys_grow_and_remember_first_rows() -> None:
    seen = _SeenKeys(capacity=8)
    assert [seen.first_row(f"k{i}", i) for i in range(50000)] == [None] * 50000
    assert [seen.first_row(f"k{i}", 99) for i in (0, 7, 4096, 49999)] == [0, 7, 4096, 49999]


# --- mail target -------------------------------------------------------------------------


def test_mail_target() -> None:
    contacts = ContactFile(DATA / "mail.csv", MAIL)
    assert contacts.mapping == {
        "First name": "first_name",
        "Surname": "last_name",
        "E-mail": "email",
        "Alt email": "alt_email",
        "Country": "country",
        "State": "state",
        "City": "city",
        "Address": "address_line1",
        "Address line 2": "address_line2",
        "Province": "state_province_region",
        "Zip": "postal_code",
        "Company": "custom:Company",
    }
    assert outcome(list(contacts.rows())) == [
        (
            2,
            {
                "first_name": "Ana",
                "last_name": "Pérez",
                "email": "ana@example.com",
                "alt_email": "ana.alt@example.com",
                "country": "Spain",
                "city": "Madrid",
                "address_line1": "Gran Vía 1",
                "state_province_region": "Madrid",
                "postal_code": "28013",
                "custom_field": {"Company": "ACME"},
            },
        ),
        (3, "row: needs an email"),
        (4, "alt_email: An email address must have an @-sign."),
        (5, "duplicate of row 2"),
    ]

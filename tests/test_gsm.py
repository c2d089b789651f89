"""The SMS text engine at every boundary of 3GPP TS 23.038 and the provider's tables."""

from __future__ import annotations

import string
from typing import Final, Literal

import gsm0338  # noqa: F401 - registers the independent "gsm03.38" codec used as an oracle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs import gsm, planning, templating
from jobs.charsets import GSM_BASIC, GSM_EXTENSION, GSM_PT_BASIC, GSM_PT_EXTENSION

CYR = "ж"  # one UCS-2 unit, not in GSM
EMOJI = "😀"  # outside the BMP: two UTF-16 units

SURROGATES: Final[tuple[Literal["Cs"]]] = ("Cs",)  # not encodable on their own


@pytest.mark.parametrize(
    ("text", "encoding", "length", "parts", "per_part"),
    [
        ("", "gsm", 0, 1, 160),
        ("a", "gsm", 1, 1, 160),
        ("a" * 160, "gsm", 160, 1, 160),
        ("a" * 161, "gsm", 161, 2, 153),
        ("a" * 306, "gsm", 306, 2, 153),
        ("a" * 307, "gsm", 307, 3, 153),
        ("€" * 80, "gsm", 160, 1, 160),  # extension characters cost two septets
        ("€" * 80 + "a", "gsm", 161, 2, 153),
        (CYR * 70, "utf-16", 70, 1, 70),
        (CYR * 71, "utf-16", 71, 2, 67),
        (CYR * 134, "utf-16", 134, 2, 67),
        (CYR * 135, "utf-16", 135, 3, 67),
        (EMOJI * 35, "utf-16", 70, 1, 70),
        ("a" * 153 * 15, "gsm", 2295, 15, 153),
    ],
)
def test_boundaries(text: str, encoding: str, length: int, parts: int, per_part: int) -> None:
    info = gsm.analyze(text)
    assert (info.encoding, info.length, info.parts, info.per_part) == (
        encoding,
        length,
        parts,
        per_part,
    )
    assert len(gsm.split(text)) == parts


def test_escape_pair_at_septet_153_moves_to_the_next_part() -> None:
    text = "a" * 152 + "€" + "b" * 20  # '€' would occupy septets 153-154
    first, second = gsm.split(text)
    assert first == "a" * 152  # a part may carry 152 septets
    assert second == "€" + "b" * 20
    assert gsm.analyze(text).parts == 2


def test_extension_char_exactly_filling_153_stays() -> None:
    text = "a" * 151 + "€" + "b" * 20  # '€' at septets 152-153: fits
    assert gsm.split(text)[0] == "a" * 151 + "€"


def test_emoji_across_the_67_unit_boundary_is_never_split() -> None:
    text = CYR * 66 + EMOJI + CYR * 10  # the emoji would take units 67-68
    parts = gsm.split(text)
    assert parts == [CYR * 66, EMOJI + CYR * 10]
    assert gsm.analyze(text) == gsm.SmsInfo("utf-16", 78, 2, 67, [CYR, EMOJI])


def test_every_basic_character_costs_one_septet_and_extension_two() -> None:
    for ch in GSM_BASIC:
        assert gsm.analyze(ch).length == 1, ch
        assert gsm.analyze(ch).encoding == "gsm"
    for ch in GSM_EXTENSION:
        assert gsm.analyze(ch).length == 2, ch
    assert len(GSM_BASIC) == 127  # 128 cells less the escape
    assert set("^{}\\[~]|€\f") == GSM_EXTENSION


def test_tables_agree_with_the_independent_gsm0338_codec() -> None:
    for ch in GSM_BASIC | GSM_EXTENSION:
        assert len(ch.encode("gsm03.38")) == gsm.analyze(ch, "gsm").length


def test_auto_lists_offending_characters_in_order_without_repeats() -> None:
    info = gsm.analyze("canção ✓ canção 😀")
    assert info.encoding == "utf-16"
    assert info.offending == ["ç", "ã", "✓", "😀"]


def test_explicit_gsm_with_unencodable_characters_is_code_113() -> None:
    with pytest.raises(gsm.UnencodableError) as err:
        gsm.analyze("hi 😀 ✓", "gsm")
    assert err.value.code == 113 and err.value.offending == ["😀", "✓"]


def test_gsm_pt_national_tables() -> None:
    info = gsm.analyze("ação Ú", "gsm-pt")  # ç ã basic in GSM-PT; Ú basic (0x5D)
    assert (info.encoding, info.length) == ("gsm-pt", 6)
    assert gsm.analyze("Ω", "gsm-pt").length == 2  # Greek moved to the extension table
    assert gsm.analyze("∞`", "gsm-pt").length == 2
    with pytest.raises(gsm.UnencodableError):
        gsm.analyze("Ñ", "gsm-pt")  # a GSM character that GSM-PT replaced
    assert GSM_PT_BASIC.isdisjoint(GSM_PT_EXTENSION)
    assert gsm.analyze("ação").encoding == "utf-16"  # auto never picks gsm-pt


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("canção", "canÇao"),
        ("ÁÍÓÚ áíóú ÀÈÌÒÙ", "AIOU aiou AEIOU"),
        ("1º 2ª", "1 2"),
        ("Õõ âêîôû ÂÊÎÔÛ ãÃ", "Oo aeiou AEIOU aA"),
    ],
)
def test_transliteration_table(text: str, sent: str) -> None:
    assert gsm.transliterate(text) == sent
    info = gsm.analyze(text, trans=True)
    assert info.encoding == "gsm" and info.length == len(sent)


def test_part_limits_name_the_parts_needed() -> None:
    with pytest.raises(gsm.TooManyPartsError, match="needs 16 parts, at most 15") as err:
        gsm.analyze("a" * (153 * 15 + 1), max_parts=gsm.MAX_PARTS_SMS)
    assert err.value.code == 105
    with pytest.raises(gsm.TooManyPartsError, match="needs 9 parts, at most 8"):
        gsm.analyze("a" * (153 * 8 + 1), max_parts=gsm.MAX_PARTS_LANDING)
    assert gsm.analyze("a" * 153 * 8, max_parts=gsm.MAX_PARTS_LANDING).parts == 8


def test_unknown_encoding_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="encoding must be one of"):
        gsm.analyze("x", "latin-1")


gsm_text = st.text(alphabet=sorted(GSM_BASIC | GSM_EXTENSION), max_size=700)
any_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(GSM_BASIC | GSM_EXTENSION)),
        st.characters(codec="utf-8", exclude_categories=SURROGATES),
    ),
    max_size=400,
)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_split_rejoins_and_respects_capacity(text: str) -> None:
    info = gsm.analyze(text)
    parts = gsm.split(text)
    assert "".join(parts) == text
    assert info.parts == len(parts)
    for part in parts:
        assert gsm.analyze(part, info.encoding).length <= info.per_part


@settings(max_examples=300, deadline=None)
@given(gsm_text)
def test_gsm_length_matches_the_codec(text: str) -> None:
    info = gsm.analyze(text)
    assert info.encoding == "gsm"
    assert info.length == len(text.encode("gsm03.38"))


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_utf16_length_is_code_units(text: str) -> None:
    info = gsm.analyze(text, "utf-16")
    assert info.length == len(text.encode("utf-16-le")) // 2


_TABLES = GSM_BASIC | GSM_EXTENSION | GSM_PT_BASIC | GSM_PT_EXTENSION
_MIXED = st.text(alphabet=st.sampled_from([*sorted(_TABLES), "é", "Ω", "😀", "中"]), max_size=200)


@given(_MIXED)
@settings(max_examples=300)
def test_the_one_match_fast_path_prices_every_text_as_character_by_character(text: str) -> None:
    """``_costs`` prices a text with one regex match when every character costs one; it
    must agree with the tables read a character at a time, for every encoding."""
    tables = {"gsm": (GSM_BASIC, GSM_EXTENSION), "gsm-pt": (GSM_PT_BASIC, GSM_PT_EXTENSION)}
    for encoding, (basic, extension) in tables.items():
        if all(ch in basic or ch in extension for ch in text):
            expected: list[int] | None = [1 if ch in basic else 2 for ch in text]
        else:
            expected = None
        assert gsm._costs(text, encoding) == expected  # type: ignore[arg-type]
    assert gsm._costs(text, "utf-16") == [2 if ord(ch) > 0xFFFF else 1 for ch in text]


@given(_MIXED, st.sampled_from(["auto", "gsm", "gsm-pt", "utf-16"]))
@settings(max_examples=300)
def test_a_single_part_priced_in_one_match_is_what_the_full_layout_says(
    text: str, encoding: str
) -> None:
    """``analyze`` prices a one-part text whose every character costs one without a cost
    list; the cost list and the layout must say the same for every text and encoding."""
    try:
        enc, costs, offending = gsm._resolve(text, encoding)
    except gsm.UnencodableError:
        with pytest.raises(gsm.UnencodableError):
            gsm.analyze(text, encoding)
        return
    per_part, parts = gsm._layout(text, enc, costs)
    expected = gsm.SmsInfo(enc, sum(costs), len(parts), per_part, offending)
    assert gsm.analyze(text, encoding) == expected


_PLAIN = st.text(alphabet="Hola, 0123456789.", max_size=80)  # what campaigns mostly are
_PIECE = st.one_of(
    _PLAIN, st.text(alphabet=st.sampled_from([*"Hola {}|ñ€[", "é", "Ω", "😀"]), max_size=12)
)
_ALNUM = st.text(alphabet=string.ascii_letters + string.digits, max_size=90)  # names, codes
_VALUE = st.one_of(_PLAIN, _ALNUM, _PIECE, st.integers(0, 999), st.none(), st.text(max_size=90))


@given(
    st.lists(
        st.tuples(_PIECE, st.sampled_from(["a", "b", "UNSUB_URL", "OTP_CODE"]),
                  st.sampled_from(["", "", "", "|upper"])),
        max_size=4,
    ),
    _PIECE,
    st.dictionaries(st.sampled_from(["a", "b"]), _VALUE),
    st.sampled_from(["auto", "gsm", "gsm-pt", "utf-16"]),
    st.sampled_from([False, False, False, True]),
    st.sampled_from([1, 1, 2, 0]),
)  # fmt: skip
@settings(max_examples=500, deadline=None)
def test_the_planners_quick_price_is_what_the_rendered_text_costs(
    steps: list[tuple[str, str, str]], tail: str, values: dict[str, object], encoding: str,
    trans: bool, limit: int,
) -> None:  # fmt: skip
    """``plan_sms`` prices a recipient from its values' lengths when it can: whenever it
    does, the price is what ``analyze`` gives the text ``render`` makes."""
    template = "".join(f"{literal}{{{name}{filt}}}" for literal, name, filt in steps) + tail
    fixed = templating.stand_ins()
    pricing = planning._quick_pricing(template, fixed, encoding, trans, limit)
    if pricing is None:
        return
    info = pricing[0](values)
    if info is None:
        return
    text = templating.render(template, values, fixed=fixed)
    assert info == gsm.analyze(text, encoding, trans=trans, max_parts=limit)


@given(
    st.lists(st.tuples(_PIECE, st.sampled_from(["a", "b", "OTP_CODE"])), max_size=3),
    _PIECE,
    st.lists(st.dictionaries(st.sampled_from(["a", "b"]), _VALUE), min_size=1, max_size=6),
    st.sampled_from(["auto", "gsm", "gsm-pt", "utf-16"]),
)
@settings(max_examples=500, deadline=None)
def test_a_chunk_priced_at_once_is_priced_as_each_of_its_recipients(
    steps: list[tuple[str, str]], tail: str, subs: list[dict[str, object]], encoding: str
) -> None:
    """``price_all`` (a column of values at a time) says one part in an encoding only
    when ``price`` says just that of every recipient: the one call it makes is the one
    the recipients' own prices make."""
    template = "".join(f"{literal}{{{name}}}" for literal, name in steps) + tail
    pricing = planning._quick_pricing(template, templating.stand_ins(), encoding, False, 1)
    if pricing is None:
        return
    price, price_all = pricing
    at_once = price_all(subs)
    infos = [price(values) for values in subs]
    if at_once is not None:
        assert {(i.encoding, i.parts) if i else None for i in infos} == {(at_once, 1)}


def test_the_quick_price_takes_the_usual_campaign_and_leaves_the_rest() -> None:
    """Not vacuous: a plain template with plain values is priced quickly; a filter, a
    value that is not a plain string, or transliteration is left to the long way."""
    fixed = templating.stand_ins()
    pricing = planning._quick_pricing("Hola {name}, {code}. {UNSUB_URL}", fixed, "auto", False, 1)
    assert pricing is not None
    quick, price_all = pricing
    assert quick({"name": "Ana", "code": "1234"}) == gsm.analyze(
        templating.render("Hola {name}, {code}. {UNSUB_URL}", {"name": "Ana", "code": "1234"},
                          fixed=fixed)
    )  # fmt: skip
    assert quick({"name": "Zoë", "code": "1234"}) is None  # ë is not in GSM's basic table
    assert quick({"name": "Ana", "code": 1234}) is None and quick({"name": "Ana"}) is None
    assert quick({"name": "A" * 150, "code": "1234"}) is None  # two parts: the long way
    assert price_all([{"name": "Ana", "code": "1234"}, {"name": "Zoe", "code": "9"}]) == "gsm"
    assert price_all([{"name": "Ana", "code": "1234"}, {"name": "Zoë", "code": "9"}]) is None
    assert price_all([{"name": "Ana", "code": "1234"}, {"name": "Ana", "code": 9}]) is None
    assert planning._quick_pricing("Hola {name|upper}", fixed, "auto", False, 1) is None
    assert planning._quick_pricing("Hola {name}", fixed, "auto", True, 1) is None

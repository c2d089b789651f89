"""Character tables of the messaging API, transcribed as data.

Source: ``messaging-api.txt`` → "Annexes GSM character set" (GSM basic, GSM
extended, GSM-PT basic, GSM-PT extended) and "Send SMS Message" → ``trans``.
Each basic table is written as in the doc: 16 rows (0x0_ .. 0x_F), 8 columns
(0x00 .. 0x70). Control cells: LF, CR, SP are their characters; ESC (0x1B) is
the escape to the extension table and carries no character ("\0" below).
Extension characters occupy two septets (escape + code).
"""

from __future__ import annotations

ESC = "\0"  # placeholder: not a character a text can contain

# GSM basic, rows 0x00..0x0F, columns 0x00 0x10 0x20 0x30 0x40 0x50 0x60 0x70.
_GSM_BASIC_ROWS = [
    ["@", "Δ", " ", "0", "¡", "P", "¿", "p"],
    ["£", "_", "!", "1", "A", "Q", "a", "q"],
    ["$", "Φ", '"', "2", "B", "R", "b", "r"],
    ["¥", "Γ", "#", "3", "C", "S", "c", "s"],
    ["è", "Λ", "¤", "4", "D", "T", "d", "t"],
    ["é", "Ω", "%", "5", "E", "U", "e", "u"],
    ["ù", "Π", "&", "6", "F", "V", "f", "v"],
    ["ì", "Ψ", "'", "7", "G", "W", "g", "w"],
    ["ò", "Σ", "(", "8", "H", "X", "h", "x"],
    ["Ç", "Θ", ")", "9", "I", "Y", "i", "y"],
    ["\n", "Ξ", "*", ":", "J", "Z", "j", "z"],
    ["Ø", ESC, "+", ";", "K", "Ä", "k", "ä"],
    ["ø", "Æ", ",", "<", "L", "Ö", "l", "ö"],
    ["\r", "æ", "-", "=", "M", "Ñ", "m", "ñ"],
    ["Å", "ß", ".", ">", "N", "Ü", "n", "ü"],
    ["å", "É", "/", "?", "O", "§", "o", "à"],
]

# GSM extended: FF (form feed) and the printable characters; SS2 and CR2 are
# control codes that no text produces.
_GSM_EXTENSION = "\f^{}\\[~]|€"

# GSM-PT basic ("** Characters different from GSM" are the national ones).
_GSM_PT_BASIC_ROWS = [
    ["@", "Δ", " ", "0", "Í", "P", "~", "p"],
    ["£", "_", "!", "1", "A", "Q", "a", "q"],
    ["$", "ª", '"', "2", "B", "R", "b", "r"],
    ["¥", "Ç", "#", "3", "C", "S", "c", "s"],
    ["ê", "À", "º", "4", "D", "T", "d", "t"],
    ["é", "∞", "%", "5", "E", "U", "e", "u"],
    ["ú", "^", "&", "6", "F", "V", "f", "v"],
    ["í", "\\", "'", "7", "G", "W", "g", "w"],
    ["ó", "€", "(", "8", "H", "X", "h", "x"],
    ["ç", "Ó", ")", "9", "I", "Y", "i", "y"],
    ["\n", "|", "*", ":", "J", "Z", "j", "z"],
    ["Ô", ESC, "+", ";", "K", "Ã", "k", "ã"],
    ["ô", "Â", ",", "<", "L", "Õ", "l", "õ"],
    ["\r", "â", "-", "=", "M", "Ú", "m", "`"],
    ["Á", "Ê", ".", ">", "N", "Ü", "n", "ü"],
    ["á", "É", "/", "?", "O", "§", "o", "à"],
]

# GSM-PT extended, every cell of the doc's table.
_GSM_PT_EXTENSION = "\f|ÀÂΦΓ^êΩÚ€úΠΨΣ{çΘ}ÍíÔÃãô[Õõ~Á]áÊ\\Óóâ"


def _basic(rows: list[list[str]]) -> frozenset[str]:
    return frozenset(cell for row in rows for cell in row if cell != ESC)


GSM_BASIC = _basic(_GSM_BASIC_ROWS)
GSM_EXTENSION = frozenset(_GSM_EXTENSION)
GSM_PT_BASIC = _basic(_GSM_PT_BASIC_ROWS)
# A character of both tables is sent from the basic one (one septet).
GSM_PT_EXTENSION = frozenset(_GSM_PT_EXTENSION) - GSM_PT_BASIC

CHARSETS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "gsm": (GSM_BASIC, GSM_EXTENSION),
    "gsm-pt": (GSM_PT_BASIC, GSM_PT_EXTENSION),
}

# "trans ... With value 1, the server modifies the common invalid characters in
# GSM7 to valid characters with the following translation table".
_TRANS_PAIRS = {
    "á": "a", "í": "i", "ó": "o", "ú": "u", "ç": "Ç", "Á": "A", "Í": "I", "Ó": "O",
    "Ú": "U", "À": "A", "È": "E", "Ì": "I", "Ò": "O", "Ù": "U", "º": "", "ª": "",
    "Õ": "O", "õ": "o", "â": "a", "ê": "e", "î": "i", "ô": "o", "û": "u", "Â": "A",
    "Ê": "E", "Î": "I", "Ô": "O", "Û": "U", "ã": "a", "Ã": "A",
}  # fmt: skip
TRANSLITERATION = str.maketrans(_TRANS_PAIRS)

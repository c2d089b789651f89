"""The provider's error codes, as data, in one place.

Source: ``messaging-api.txt`` → "Errors" (the table
"Error Code / HTTP Code / Description", codes 0, 101 to 196 and 422). Descriptions
are copied verbatim, typos included ("Ivalid"), because clients may match them.
"""

from __future__ import annotations

from typing import Any

# code → (HTTP status, description), exactly as in the doc's "Errors" table.
ERRORS: dict[int, tuple[int, str]] = {
    0: (202, "Accepted for delivery"),
    101: (500, "Internal Database error"),
    102: (400, "No valid recipients"),
    103: (401, "Username or password unknown"),
    104: (400, "Text message missing"),
    105: (400, "Text message too long"),
    106: (400, "Sender missing"),
    107: (400, "Sender too long"),
    108: (400, "No valid Datetime for send"),
    109: (400, "Notification URL incorrect"),
    110: (400, "Exceeded maximum parts allowed or incorrect number of parts"),
    111: (402, "Not enough credits"),
    112: (401, "IP address not allowed"),
    113: (400, "Invalid coding"),
    114: (400, "Invalid subject"),
    115: (400, "Sender is not verified"),
    116: (400, "Invalid replyTo"),
    117: (400, "ReplyTo is not verified"),
    118: (401, "Email blocked for exceeding the hard-bounced limit allowed"),
    119: (400, "Invalid expiration date"),
    120: (400, "Invalid GUID"),
    121: (400, "Invalid scheduled date"),
    122: (500, "Update error"),
    123: (500, "Delete error"),
    125: (400, "Invalid JSON"),
    126: (400, "Empty campaign name"),
    130: (400, "Invalid voice language"),
    131: (400, "Invalid voice gender"),
    132: (400, "Invalid voice caller"),
    133: (400, "Invalid audio URL"),
    134: (400, "Unsupported audio format"),
    140: (400, "Template missing"),
    141: (400, "Missing landing placeholder"),
    142: (400, "Can't split variable placeholders"),
    150: (400, "Missing billing profile"),
    151: (400, "Error retrieving TPV url"),
    152: (400, "Invalid VAT"),
    153: (400, "Invalid method"),
    154: (400, "Invalid conversion rate"),
    155: (400, "Max limit reached"),
    156: (400, "Min limit reached"),
    157: (400, "Error generating invoice"),
    160: (400, "Invalid voice interactive language"),
    161: (400, "Invalid voice interactive gender"),
    162: (400, "Invalid voice interactive caller"),
    163: (400, "Invalid voice interactive audio URL"),
    164: (400, "Unsupported voice interactive audio format"),
    165: (400, "Invalid voice interactive speech type"),
    166: (400, "Ivalid voice interactive menu option type"),
    167: (400, "Trying to save an existing campaign"),
    168: (400, "Empty speech type"),
    169: (400, "Empty menu"),
    170: (400, "Empty phone key"),
    171: (400, "Phone Key is not a number"),
    172: (400, "Phone key out of range"),
    173: (400, "Empty menu options for sub menu"),
    174: (400, "Empty phone prefix for call transfer"),
    175: (400, "Empty phone for call transfer"),
    176: (400, "Call retries value is not an integer"),
    177: (400, "Call retries value out of range"),
    178: (400, "Cost limit value is not an integer"),
    179: (400, "Speech retries value is not an integer"),
    180: (400, "Speech retries value out of range"),
    181: (400, "Speech timeout seconds value is not an integer"),
    182: (400, "Speech timeout seconds value out of range"),
    183: (400, "Available times value is not an array"),
    184: (400, "Available times day is not an integer"),
    185: (400, "Available times day out of range"),
    186: (400, "Available times from hour format error"),
    187: (400, "Available times to hour format error"),
    188: (400, "Available times from hour is greater than to hour"),
    189: (400, "Missing available time object property"),
    190: (400, "Call Retries is specified but its value is empty"),
    191: (400, "Cost limit is specified but its value is empty"),
    192: (400, "Speech Retries is specified but its value is empty"),
    193: (400, "Speech timeout seconds is specified but its value is empty"),
    194: (400, "Available times is specified but its value is empty"),
    195: (400, "No valid contacts external IDs"),
    196: (400, "Available times range is too short"),
    422: (422, "Input validation error"),
}

# Not in the doc's table: what the sandbox answers for routes it does not know
# (the doc does not say; an HTTP status used as the code, like 422 above).
NOT_FOUND = (404, "Resource not found")
METHOD_NOT_ALLOWED = (405, "Method not allowed")

VALIDATION = 422


def error_detail(
    code: int, fields: dict[str, str] | None = None, description: str | None = None
) -> dict[str, Any]:
    """The ``{"code", "description"[, "fields"]}`` object for a documented code.

    ``description`` replaces the table's text where the doc shows another one for
    the same code (WhatsApp: 140 "Invalid template", 102 "The messages.1.to …").
    """
    detail: dict[str, Any] = {"code": code, "description": description or ERRORS[code][1]}
    if fields:
        detail["fields"] = fields
    return detail


class ApiError(Exception):
    """A refusal of the whole request: answered as ``{"error": detail}`` with ``status``."""

    def __init__(
        self, code: int, fields: dict[str, str] | None = None, description: str | None = None
    ) -> None:
        self.code = code
        self.status = ERRORS[code][0]
        self.detail = error_detail(code, fields, description)
        super().__init__(f"{code} {self.detail['description']}" + (f": {fields}" if fields else ""))

    @property
    def body(self) -> dict[str, Any]:
        return {"error": self.detail}


class HttpError(ApiError):
    """A refusal whose code is its HTTP status, for answers the doc's table has no code
    for (``NOT_FOUND``: a contact or group id that does not exist)."""

    def __init__(self, status: int, description: str) -> None:
        Exception.__init__(self, f"{status} {description}")
        self.code = self.status = status
        self.detail = {"code": status, "description": description}


def validation_error(fields: dict[str, str]) -> ApiError:
    """422 "Input validation error" naming each bad field: ``{"fields": {name: reason}}``."""
    return ApiError(VALIDATION, fields)

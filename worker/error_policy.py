"""What the worker does with each provider answer — one table, as data.

Source: messaging-api.txt → "Errors" (code, HTTP status, description). Every
documented code has a row; an undocumented code falls back by HTTP status
(5xx/429 retry, other 4xx reject), because guessing "retry" on an unknown 4xx
would resend a message the provider already refused.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    ACCEPT = "accept"  # final: accepted
    RETRY = "retry"  # transient: try again later, within max attempts / age
    REJECT_RECIPIENT = "reject_recipient"  # final for that recipient: rejected
    REJECT_MESSAGE = "reject_message"  # final for every recipient of the call: rejected
    HOLD = "hold"  # account-level (credits, billing): park the work, stop the account
    HOLD_CHANNEL = "hold_channel"  # like HOLD, for the channel that heard it only
    HALT = "halt"  # account-level (credentials, IP, not the provider's API): stop loudly


# code → (action, why). Codes 151–157 belong to billing endpoints the pipeline
# never calls; they are listed so that none is left undecided.
POLICY: dict[int, tuple[Action, str]] = {
    0: (Action.ACCEPT, "accepted for delivery"),
    101: (Action.RETRY, "internal database error on the provider: transient"),
    102: (Action.REJECT_RECIPIENT, "the recipient is not a valid address/number"),
    103: (Action.HALT, "bad credentials: every call would fail the same way"),
    104: (Action.REJECT_MESSAGE, "text missing: resending the same request cannot help"),
    105: (Action.REJECT_MESSAGE, "text too long for the declared parts"),
    106: (Action.REJECT_MESSAGE, "sender missing"),
    107: (Action.REJECT_MESSAGE, "sender too long"),
    108: (Action.REJECT_MESSAGE, "invalid send date"),
    109: (Action.REJECT_MESSAGE, "invalid notification URL"),
    110: (Action.REJECT_MESSAGE, "invalid number of parts"),
    111: (Action.HOLD, "not enough credits: wait for a top-up, lose nothing"),
    112: (Action.HALT, "this IP is not allowed on the account"),
    113: (Action.REJECT_MESSAGE, "encoding cannot carry the text"),
    114: (Action.REJECT_MESSAGE, "invalid subject"),
    115: (Action.REJECT_MESSAGE, "sender not verified: that sending's mail, nothing else"),
    116: (Action.REJECT_MESSAGE, "invalid replyTo"),
    117: (Action.REJECT_MESSAGE, "replyTo not verified: that sending's mail, nothing else"),
    118: (Action.HOLD_CHANNEL, "email blocked for hard bounces: email waits, the rest flows"),
    119: (Action.REJECT_MESSAGE, "invalid expiration date"),
    120: (Action.REJECT_MESSAGE, "invalid GUID"),
    121: (Action.REJECT_MESSAGE, "invalid scheduled date"),
    122: (Action.RETRY, "update error on the provider: transient"),
    123: (Action.RETRY, "delete error on the provider: transient"),
    125: (Action.REJECT_MESSAGE, "invalid JSON: a bug on our side, resending repeats it"),
    126: (Action.REJECT_MESSAGE, "empty campaign name"),
    130: (Action.REJECT_MESSAGE, "invalid voice language"),
    131: (Action.REJECT_MESSAGE, "invalid voice gender"),
    132: (Action.REJECT_MESSAGE, "invalid voice caller"),
    133: (Action.REJECT_MESSAGE, "invalid audio URL"),
    134: (Action.REJECT_MESSAGE, "unsupported audio format"),
    140: (Action.REJECT_MESSAGE, "template missing"),
    141: (Action.REJECT_MESSAGE, "missing landing placeholder"),
    142: (Action.REJECT_MESSAGE, "variable placeholders cannot be split"),
    150: (Action.HOLD, "missing billing profile: the operator must add one"),
    **{
        code: (Action.REJECT_MESSAGE, "billing endpoint error, not retryable")
        for code in range(151, 158)
    },
    **{
        code: (Action.REJECT_MESSAGE, "invalid voice/interactive/available-times parameter")
        for code in range(160, 197)
    },
    422: (Action.REJECT_MESSAGE, "input validation error"),
}


def classify(code: int | None, http_status: int) -> tuple[Action, str]:
    """The action for a provider error; ``code`` None means a bare HTTP failure."""
    if code is not None and code in POLICY:
        return POLICY[code]
    if http_status == 429:
        return Action.RETRY, "rate limited: slow down and retry"
    if http_status >= 500:
        return Action.RETRY, "server error without a documented code: transient"
    if http_status in (401, 403):
        return Action.HALT, "authentication refused"
    if http_status in (404, 405):
        return Action.HALT, "not the provider's API: check BULKSEND_PROVIDER_URL"
    return Action.REJECT_MESSAGE, f"undocumented error {code} with HTTP {http_status}"

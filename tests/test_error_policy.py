"""One test per policy row: a provider answer → the recorded state and attempts.

Each documented code is injected by the sandbox (``POST /_sandbox/faults``) on
every call, and a real worker handles it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bulksend.stack import free_port
from jobs.accounts import account_id, read_stop, resume
from jobs.producer import Producer
from jobs.settings import Settings
from jobs.sms import Sms
from tests.helpers import drain, numbers, running_worker, sandbox_stats, set_faults, wait_until
from worker.error_policy import POLICY, Action, classify

MAX_ATTEMPTS = 2


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"max_attempts": MAX_ATTEMPTS, "retry_delay": 0.01, "hold_probe_interval": 0}
    )


@pytest.fixture
async def producer(fast: Settings) -> AsyncIterator[Producer]:
    p = await Producer.connect(fast)
    yield p
    await p.close()


async def submit(producer: Producer, n: int = 2) -> str:
    return await producer.submit(
        Sms.model_validate({"to": numbers(n), "from": "TEST", "message": "policy"})
    )


async def results(producer: Producer, sending_id: str) -> set[tuple[Any, ...]]:
    return {
        (r["status"], r.get("code"), r["attempts"])
        async for r in producer.store.iter_results(sending_id)
    }


def test_every_documented_code_has_a_decided_action() -> None:
    documented = {0, *range(101, 124), *range(125, 127), *range(130, 135), *range(140, 143)}
    documented |= {150, *range(151, 158), *range(160, 197), 422}
    documented -= {124}
    assert documented <= set(POLICY)
    assert classify(None, 503)[0] is Action.RETRY
    assert classify(None, 429)[0] is Action.RETRY
    assert classify(999, 400)[0] is Action.REJECT_MESSAGE  # unknown 4xx: never resend blindly


RETRY = sorted(c for c, (a, _) in POLICY.items() if a is Action.RETRY)
REJECT = sorted(
    c for c, (a, _) in POLICY.items() if a in (Action.REJECT_MESSAGE, Action.REJECT_RECIPIENT)
)
STOP = sorted(c for c, (a, _) in POLICY.items() if a in (Action.HOLD, Action.HALT))


@pytest.mark.parametrize("code", RETRY)
async def test_retry_codes_retry_then_fail_with_the_last_code(
    producer: Producer, fast: Settings, sandbox_url: str, code: int
) -> None:
    set_faults(sandbox_url, error={"code": code, "rate": 1.0})
    sending_id = await submit(producer)
    await drain(fast)
    assert await results(producer, sending_id) == {("failed", code, MAX_ATTEMPTS)}
    assert sandbox_stats(sandbox_url)["requests"] == MAX_ATTEMPTS


@pytest.mark.parametrize("code", REJECT)
async def test_reject_codes_are_final_after_one_attempt(
    producer: Producer, fast: Settings, sandbox_url: str, code: int
) -> None:
    set_faults(sandbox_url, error={"code": code, "rate": 1.0})
    sending_id = await submit(producer)
    await drain(fast)
    assert await results(producer, sending_id) == {("rejected", code, 1)}


@pytest.mark.parametrize("code", STOP)
async def test_hold_and_halt_codes_stop_the_account_and_keep_every_job(
    producer: Producer, fast: Settings, sandbox_url: str, code: int
) -> None:
    set_faults(sandbox_url, error={"code": code, "rate": 1.0})
    sending_id = await submit(producer)
    account = account_id(fast)
    async with running_worker(fast):

        async def stopped() -> bool:
            return await read_stop(producer.redis, account) is not None

        await wait_until(stopped)
        await asyncio.sleep(0.2)
    stop = await read_stop(producer.redis, account)
    assert stop is not None and stop.code == code
    assert stop.state == ("halted" if POLICY[code][0] is Action.HALT else "held")
    assert await results(producer, sending_id) == {("queued", None, 0)}  # no attempt spent
    status = await producer.status(sending_id)
    assert status is not None and status["account"]["code"] == code
    set_faults(sandbox_url)  # the operator fixed it …
    await resume(producer.redis, account)  # … and said so
    await drain(fast)
    assert await results(producer, sending_id) == {("accepted", None, 1)}


async def test_a_hold_is_probed_automatically_and_lifted(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, error={"code": 111, "rate": 1.0})
    sending_id = await submit(producer)
    probing = fast.model_copy(update={"hold_probe_interval": 0.3})
    async with running_worker(probing):

        async def held() -> bool:
            return await read_stop(producer.redis, account_id(fast)) is not None

        await wait_until(held, what="held")
        set_faults(sandbox_url)  # credits bought; nobody runs `resume`

        async def done() -> bool:
            status = await producer.status(sending_id)
            return status is not None and status["final"]

        await wait_until(done)
    assert await results(producer, sending_id) == {("accepted", None, 1)}
    assert await read_stop(producer.redis, account_id(fast)) is None


async def test_accepted_code_0(producer: Producer, fast: Settings) -> None:
    sending_id = await submit(producer)
    await drain(fast)
    assert await results(producer, sending_id) == {("accepted", None, 1)}


async def test_a_bare_429_retries(producer: Producer, fast: Settings, sandbox_url: str) -> None:
    set_faults(sandbox_url, status={"status": 429, "rate": 1.0})
    sending_id = await submit(producer)
    await drain(fast)
    assert await results(producer, sending_id) == {("failed", None, MAX_ATTEMPTS)}


@pytest.mark.parametrize("mode", ["hold", "resend"])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_bare_5xx_may_have_landed_so_it_is_unknown_or_resent_on_purpose(
    producer: Producer, fast: Settings, sandbox_url: str, status: int, mode: str
) -> None:
    """Without the documented error body a 5xx is a gateway's word, not the provider's."""
    set_faults(sandbox_url, status={"status": status, "rate": 1.0})
    sending_id = await submit(producer)
    await drain(fast.model_copy(update={"on_ambiguous": mode}))
    attempts = 1 if mode == "hold" else MAX_ATTEMPTS
    assert await results(producer, sending_id) == {("unknown", -1, attempts)}


async def test_connection_refused_retries_and_never_reaches_anyone(
    producer: Producer, fast: Settings
) -> None:
    nowhere = fast.model_copy(update={"provider_url": f"http://127.0.0.1:{free_port()}"})
    sending_id = await submit(producer)
    await drain(nowhere)
    [(status, code, attempts)] = await results(producer, sending_id)
    assert (status, code, attempts) == ("failed", None, MAX_ATTEMPTS)


@pytest.mark.parametrize("mode", ["hold", "resend"])
async def test_timeout_after_sending_is_unknown_or_resent(
    producer: Producer, fast: Settings, sandbox_url: str, mode: str
) -> None:
    set_faults(sandbox_url, ambiguous={"rate": 1.0, "delay_s": 3})
    settings = fast.model_copy(update={"provider_timeout": 0.5, "on_ambiguous": mode})
    sending_id = await submit(producer)
    await drain(settings)
    got = await results(producer, sending_id)
    if mode == "hold":
        assert got == {("unknown", -1, 1)}  # recorded as not known, never resent
        assert sandbox_stats(sandbox_url)["duplicates"] == 0
    else:
        assert got == {("unknown", -1, MAX_ATTEMPTS)}  # resent; still no answer: not "failed"
        assert sandbox_stats(sandbox_url)["duplicates"] == 2  # and the provider got it twice


async def test_requeue_unknown_sends_them_again_on_purpose(
    producer: Producer, fast: Settings, sandbox_url: str
) -> None:
    set_faults(sandbox_url, ambiguous={"rate": 1.0, "delay_s": 3})
    sending_id = await producer.submit(
        Sms.model_validate(
            {"to": numbers(2), "from": "T", "message": "Hi {n}", "sub": [{"n": "a"}, {"n": "b"}]}
        )
    )
    await drain(fast.model_copy(update={"provider_timeout": 0.5}))
    assert await results(producer, sending_id) == {("unknown", -1, 1)}
    set_faults(sandbox_url)
    assert await producer.requeue_unknown(sending_id) == 2
    await drain(fast)
    assert await results(producer, sending_id) == {("accepted", None, 2)}
    status = await producer.status(sending_id)
    assert status is not None and status["final"] and status["counts"]["unknown"] == 0
    assert sandbox_stats(sandbox_url)["duplicates"] == 2  # the operator chose to resend

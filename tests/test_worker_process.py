"""What a worker does to the process it runs in: only to a process of its own."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from jobs.settings import Settings
from tests.helpers import drain
from worker.main import OWN_PROCESS


@pytest.fixture
def nothing_frozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.mark.usefixtures("nothing_frozen")
async def test_a_worker_of_its_own_process_freezes_what_start_up_built(
    settings: Settings,
) -> None:
    await drain(settings, ctx={"settings": settings, OWN_PROCESS: True})
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("nothing_frozen")
async def test_a_worker_in_a_host_process_freezes_nothing(settings: Settings) -> None:
    await drain(settings)
    assert gc.get_freeze_count() == 0

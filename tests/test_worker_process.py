"""What a worker does to the process it runs in: only to a process of its own."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from jobs.settings import Settings
from tests.helpers import drain
from worker.main import OWN_PROCESS, YOUNG_COLLECTION_AFTER


@pytest.fixture
def collector_as_it_was() -> Iterator[tuple[int, int, int]]:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        yield thresholds
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def test_a_worker_of_its_own_process_tunes_the_collector(
    settings: Settings, collector_as_it_was: tuple[int, int, int]
) -> None:
    """Start-up's objects frozen, young collections less often, the rest as it was."""
    await drain(settings, ctx={"settings": settings, OWN_PROCESS: True})
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_COLLECTION_AFTER, *collector_as_it_was[1:])


async def test_a_worker_in_a_host_process_leaves_the_collector_alone(
    settings: Settings, collector_as_it_was: tuple[int, int, int]
) -> None:
    await drain(settings)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == collector_as_it_was

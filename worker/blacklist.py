"""The provider's blacklist and our suppression lists, kept in step (``BULKSEND_BLACKLIST_SYNC``).

messaging-api.txt → "Blacklist": ``GET /api/rest/v2/blacklist/{type}`` pages
through a type's entries (``limit`` up to 1000, ``meta.pagination``), ``PUT``
``{"recipient"}`` adds one (200), ``DELETE`` ``{"recipient"}`` removes one (204).
Types are our lists: ``sms``, ``voice``, ``mailing``.

* ``pull``: every entry of the provider's goes on our list (source ``provider``,
  reason "provider blacklist"), unless we removed that address and the removal
  has not reached the provider yet.
* ``push``: what we added (``keys.suppression_push``) is PUT, what we removed
  (``keys.suppression_drop``) is DELETEd; each leaves its set once the provider
  answered it (a 422 — the provider will never take that address — too, logged).
  Anything else (no answer, 5xx, 429, 401) ends that list's round: it is tried
  again at the next sync.

Removals on the provider's side are not pulled: an entry it drops stays on ours
until someone removes it here. ``sync_due`` runs both from the sweeper's loop,
once per ``BULKSEND_BLACKLIST_SYNC_INTERVAL`` for all workers (``keys.BLACKLIST_SYNC``
is the lock and the timer). Logs name lists and counts, never addresses.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Final

import httpx
import orjson

from jobs import keys, suppression
from jobs.results import now_iso
from jobs.settings import Settings

__all__ = ["PATH", "client_for", "pull", "push", "sync", "sync_due"]

log = logging.getLogger("bulksend.blacklist")

PATH: Final = "/api/rest/v2/blacklist"
PAGE_LIMIT: Final = 1000  # "Maximum: 1000."
MAX_PAGES: Final = 100_000  # a provider whose next link never ends cannot keep us forever
PROVIDER_REASON: Final = "provider blacklist"
SCAN_COUNT: Final = 500  # addresses of a push set read per step
REFUSED: Final = (400, 422)  # the provider will never take this request: not retried


def client_for(settings: Settings) -> httpx.AsyncClient:
    """An HTTP client for the messaging API, as ``worker.provider.ProviderClient`` makes
    its own: the base URL, Basic auth, JSON, the provider timeout."""
    timeout = settings.provider_timeout
    return httpx.AsyncClient(
        base_url=settings.provider_url,
        auth=httpx.BasicAuth(*settings.provider_auth),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )


def _next_page(body: Any, page: int, got: int) -> int | None:
    """The page after ``page``: from ``links.next`` (its ``page``, never its host: our
    credentials go only to our base URL), else from the page counts; None at the end."""
    if got == 0:
        return None
    meta = body.get("meta") if isinstance(body, dict) else None
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    if not isinstance(pagination, dict):
        return page + 1 if got >= PAGE_LIMIT else None
    links = pagination.get("links")
    following = links.get("next") if isinstance(links, dict) else None
    if isinstance(following, str) and following:
        raw = httpx.URL(following).params.get("page")
        if raw is not None and raw.isdigit() and int(raw) > page:
            return int(raw)
        return page + 1
    current, pages = pagination.get("current_page"), pagination.get("total_pages")
    if isinstance(current, int) and isinstance(pages, int) and current < pages:
        return current + 1
    return None


async def pull(client: httpx.AsyncClient, redis: Any) -> dict[str, int]:
    """Every list's entries from the provider's blacklist; returns how many were new per
    list. A list whose pages cannot be read is logged and left for the next sync (what
    was read of it is kept)."""
    added: dict[str, int] = {}
    for list_name in suppression.LISTS:
        added[list_name] = 0
        page: int | None = 1
        pages = 0
        while page is not None and pages < MAX_PAGES:
            pages += 1
            try:
                response = await client.get(
                    f"{PATH}/{list_name}", params={"limit": PAGE_LIMIT, "page": page}
                )
            except httpx.HTTPError as exc:
                log.warning("blacklist %s: pull stopped at page %d: %r", list_name, page, exc)
                break
            if response.status_code != 200:
                log.warning(
                    "blacklist %s: pull stopped at page %d: HTTP %d",
                    list_name,
                    page,
                    response.status_code,
                )
                break
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                log.warning("blacklist %s: page %d is not JSON; pull stopped", list_name, page)
                break
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                log.warning("blacklist %s: page %d has no data list; pull stopped", list_name, page)
                break
            found: list[tuple[str, suppression.Entry]] = []
            for item in data:
                recipient = item.get("recipient") if isinstance(item, dict) else None
                if not isinstance(recipient, str):
                    continue
                address = suppression.normalize(list_name, recipient)
                if not address:
                    continue
                at = item.get("createdAt")
                entry = suppression.Entry(
                    reason=PROVIDER_REASON,
                    at=at if isinstance(at, str) and at else now_iso(),
                    source="provider",
                    sending=None,
                )
                found.append((address, entry))
            added[list_name] += await suppression.add_many(redis, list_name, found, mode="provider")
            page = _next_page(body, page, len(data))
    return added


async def _members(redis: Any, key: str) -> list[str]:
    members: list[str] = []
    cursor = 0
    while True:
        cursor, found = await redis.sscan(key, cursor, count=SCAN_COUNT)
        members += [m.decode() if isinstance(m, bytes) else str(m) for m in found]
        if int(cursor) == 0:
            return members


async def _send(
    client: httpx.AsyncClient, method: str, list_name: str, address: str, done: tuple[int, ...]
) -> bool | None:
    """True: answered (``done``); False: refused for good (logged); None: try again later."""
    try:
        response = await client.request(
            method, f"{PATH}/{list_name}", content=orjson.dumps({"recipient": address})
        )
    except httpx.HTTPError as exc:
        log.warning("blacklist %s: %s failed (%r); again at the next sync", list_name, method, exc)
        return None
    if response.status_code in done:
        return True
    if response.status_code in REFUSED:
        log.error(
            "blacklist %s: the provider refused a %s (HTTP %d: %s); not tried again",
            list_name,
            method,
            response.status_code,
            response.text[:200],
        )
        return False
    log.warning(
        "blacklist %s: %s answered HTTP %d; again at the next sync",
        list_name,
        method,
        response.status_code,
    )
    return None


async def push(client: httpx.AsyncClient, redis: Any) -> dict[str, int]:
    """Our additions PUT and our removals DELETEd on the provider's blacklist; returns how
    many of each went (``{"sms": n, …, "removed:sms": n, …}``)."""
    report: Counter[str] = Counter()
    for list_name in suppression.LISTS:
        for kind, key, method, done in (
            ("", keys.suppression_push(list_name), "PUT", (200, 201, 204)),
            ("removed:", keys.suppression_drop(list_name), "DELETE", (200, 204, 404)),
        ):
            report[f"{kind}{list_name}"] += 0
            for address in await _members(redis, key):
                outcome = await _send(client, method, list_name, address, done)
                if outcome is None:
                    break  # the provider is not answering as it should: next sync
                await redis.srem(key, address)
                report[f"{kind}{list_name}"] += int(outcome)
                if not outcome:
                    report[f"refused:{list_name}"] += 1
    return dict(report)


async def sync(client: httpx.AsyncClient, redis: Any) -> dict[str, int]:
    """``push`` then ``pull`` (so a removal reaches the provider before its list is read)."""
    report = await push(client, redis)
    for list_name, n in (await pull(client, redis)).items():
        report[f"pulled:{list_name}"] = n
    return report


async def sync_due(
    redis: Any, settings: Settings, client: httpx.AsyncClient | None = None
) -> dict[str, int] | None:
    """``sync`` if the sync is on and no worker synced in the last interval; None when
    it was not this one's turn."""
    if not settings.blacklist_sync:
        return None
    interval_ms = max(int(settings.blacklist_sync_interval * 1000), 1)
    if not await redis.set(keys.BLACKLIST_SYNC, "1", nx=True, px=interval_ms):
        return None
    own = client is None
    client = client or client_for(settings)
    try:
        report = await sync(client, redis)
    finally:
        if own:
            await client.aclose()
    moved = {name: n for name, n in report.items() if n}
    if moved:
        log.info("blacklist sync: %s", moved)
    return report

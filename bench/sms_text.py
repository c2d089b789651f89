"""SMS text engine benchmarks, measured side by side in one run.

(a) ``jobs.gsm.analyze`` throughput on a realistic mix against the ``gsm0338``
    codec's encode-and-count (the usual way: encode, count bytes, divide).
(b) Billed parts for a 100,000-recipient sending where 2% of names need UCS-2:
    grouped by (encoding, parts) per recipient, as the worker does, against one
    encoding for the whole batch (UCS-2 as soon as one recipient needs it).

Run: python bench/sms_text.py   (prints ratios; the last line is machine-readable)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import gsm0338  # noqa: F401 - registers the "gsm03.38" codec

from jobs import gsm
from jobs.templating import render

RNG = random.Random(2026)
NAMES = ["ana", "luis", "marta", "peter", "sven", "amira", "kenji", "omar", "julia", "mateo"]
UCS2_NAMES = ["Zoë", "Łukasz", "Ἀλέξανδρος", "Сергей", "ağa", "李雷", "Dvořák"]
MARKETING = (
    "Hi {name}, our winter sale starts today: 30% off every jacket and boot in store "
    "and online until Sunday. Show this SMS at the till or use code WINTER30. "
    "Reply STOP to opt out."
)


def realistic_mix(n: int) -> list[str]:
    texts = []
    for _ in range(n):
        roll = RNG.random()
        name = RNG.choice(NAMES)
        if roll < 0.05:  # 5% with accents or emoji
            text = RNG.choice(
                [f"Olá {name}, a sua encomenda chegou 📦", f"Señor {name}: ¿confirma la cita? ✔"]
            )
        elif roll < 0.55:  # short OTPs
            text = f"Your code is {RNG.randrange(10**6):06d}. It expires in 5 minutes."
        else:  # 2-part marketing texts
            text = render(MARKETING, {"name": name})
        texts.append(text)
    return texts


def codec_count(text: str) -> tuple[str, int, int]:
    """Encode-and-count with the gsm0338 codec (no escape-aware splitting)."""
    try:
        length = len(text.encode("gsm03.38"))
        encoding, single, concat = "gsm", 160, 153
    except UnicodeEncodeError:
        length = len(text.encode("utf-16-le")) // 2
        encoding, single, concat = "utf-16", 70, 67
    parts = 1 if length <= single else -(-length // concat)
    return encoding, length, parts


def ours(text: str) -> tuple[str, int, int]:
    info = gsm.analyze(text)
    return info.encoding, info.length, info.parts


def throughput(fn: Callable[[str], object], texts: list[str], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for text in texts:
            fn(text)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def billed_parts(n: int = 100_000, ucs2_share: float = 0.02) -> tuple[int, int]:
    names = [
        RNG.choice(UCS2_NAMES) if RNG.random() < ucs2_share else RNG.choice(NAMES) for _ in range(n)
    ]
    texts = [render(MARKETING, {"name": name}) for name in names]
    grouped = sum(gsm.analyze(t).parts for t in texts)
    batch_encoding = "utf-16" if any(gsm.analyze(t).encoding == "utf-16" for t in texts) else "gsm"
    single = sum(gsm.analyze(t, batch_encoding).parts for t in texts)
    return grouped, single


def main() -> None:
    texts = realistic_mix(20_000)
    mismatches = sum(ours(t)[:2] != codec_count(t)[:2] for t in texts)
    ours_rate = throughput(ours, texts)
    codec_rate = throughput(codec_count, texts)
    print(
        f"(a) analyze: {ours_rate:,.0f} texts/s; "
        f"gsm0338 encode-and-count: {codec_rate:,.0f} texts/s"
    )
    print(
        f"    ratio analyze/gsm0338 = {ours_rate / codec_rate:.2f} "
        f"(same encoding and length on {len(texts) - mismatches}/{len(texts)} texts)"
    )
    grouped, single = billed_parts()
    print(
        f"(b) 100,000 recipients, 2% UCS-2 names: grouped {grouped:,} parts billed, "
        f"one encoding for the batch {single:,} parts"
    )
    print(
        f"    ratio one-encoding/grouped = {single / grouped:.2f} "
        f"({single - grouped:,} parts saved)"
    )
    print(
        f"RESULT analyze_vs_gsm0338={ours_rate / codec_rate:.2f} "
        f"parts_single_vs_grouped={single / grouped:.2f}"
    )


if __name__ == "__main__":
    main()

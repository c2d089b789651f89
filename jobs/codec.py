"""How everything we put in Redis is serialized — never pickle.

A value read from Redis must not be able to run code in a worker; both formats
here only build plain data, and both are fast enough for the hot path.

- JSON (orjson) for arq jobs, specs, chunks and everything else.
- MessagePack for recipients' records, the one value there is one of per
  recipient: Redis's Lua reads and writes it as well as JSON (``cmsgpack``), and
  it is a fifth smaller (no quotes, no separators). Its strings are the old
  spec's raw strings, bytes included: the ``cmsgpack`` in Redis knows no ``bin``
  type, and a batch of records for a script carries them as strings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import msgpack
import orjson


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


_PACKERS = threading.local()  # one Packer per thread: not shareable, and made once


def pack(value: Any) -> bytes:
    """``msgpack.packb`` makes a Packer per call: half of what packing a record costs
    (0.65 µs against 0.33 with one kept)."""
    return packer()(value)


def packer() -> Callable[[Any], bytes]:
    """This thread's ``pack``, looked up once by a caller that packs a thousand values."""
    try:
        return cast(Callable[[Any], bytes], _PACKERS.pack)
    except AttributeError:
        _PACKERS.pack = msgpack.Packer(use_bin_type=False).pack
        return cast(Callable[[Any], bytes], _PACKERS.pack)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)

"""What a Redis script pays to take in a call's records, by where they differ.

Redis's Lua (5.1) interns every string a script makes, and hashes a long one from
its end, one byte in every few. A call's final records differ mostly in the
address and the message id: written first, as a dict built in the usual order
puts them, they differ where the hash does not look, collide in the string table,
and each one costs the script a walk along the others. ``jobs.results.successor``
writes the address last for this reason.

This unpacks 1,000 records (the MessagePack batch ``ResultStore.record`` sends) in
an embedded Redis, with the address first and then last, and prints µs per record
from ``INFO commandstats``: with message ids like the sandbox's (a counter at the
end, which the hash partly sees) and with ids that differ only in their first
characters (which a provider's opaque ids may well do).

Run: python bench/lua_strings.py [--records 1000]
(the last line is machine-readable: RESULT key=value ...)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import redis

from bulksend.redis_server import RedisServer
from jobs import codec
from jobs.results import now_iso

UNPACK = "local items = cmsgpack.unpack(ARGV[1]) return #items"
ROUNDS = 20


def record(i: int, *, address_last: bool, id_ends: bool) -> bytes:
    message_id = f"5f3a{i:09x}" if id_ends else f"{i:09x}5f3a0000000000"
    fields: dict[str, Any] = {
        "queued_at": now_iso(), "attempts": 1, "status": "accepted", "updated_at": now_iso(),
        "id": message_id, "parts": 1, "encoding": "gsm",
    }  # fmt: skip
    to = f"34660{i:06d}"
    return codec.pack({**fields, "to": to} if address_last else {"to": to, **fields})


def us_per_record(client: Any, n: int, *, address_last: bool, id_ends: bool) -> float:
    batch = codec.pack(
        [(str(i), "accepted", record(i, address_last=address_last, id_ends=id_ends))
         for i in range(n)]
    )  # fmt: skip
    sha = client.script_load(UNPACK)
    client.evalsha(sha, 0, batch)
    client.config_resetstat()
    for _ in range(ROUNDS):
        client.evalsha(sha, 0, batch)
    stats = client.info("commandstats")["cmdstat_evalsha"]
    return float(stats["usec"]) / ROUNDS / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            client = redis.Redis.from_url(server.url)
            got = {
                (ends, last): us_per_record(client, args.records, address_last=last, id_ends=ends)
                for ends in (True, False)
                for last in (False, True)
            }
            client.close()
        finally:
            server.stop()
    print(f"unpacking {args.records:,} records in a script, µs each (address first → last):")
    for ends, shape in ((True, "sandbox-like ids"), (False, "ids differing first")):
        print(f"  {shape:<20} {got[ends, False]:.2f} → {got[ends, True]:.2f}")
    print(
        f"RESULT sandbox_ids_first_us={got[True, False]:.2f} "
        f"sandbox_ids_last_us={got[True, True]:.2f} "
        f"other_ids_first_us={got[False, False]:.2f} other_ids_last_us={got[False, True]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

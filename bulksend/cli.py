"""The ``bulksend`` command line (a contract other tools rely on: README → "Command line").

Flags of ``send`` are the provider's parameter names in kebab-case
(``scheduleDate`` → ``--schedule-date``); list parameters are repeatable.
Bad input exits non-zero with one line on stderr that names the field.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from bulksend.flags import FlagError, add_model_flags, model_data
from jobs import channels, connection
from jobs.base import InvalidJob, SendJob, build
from jobs.contacts import ContactImport
from jobs.errors import (
    BulksendError,
    ConfigurationError,
    IdempotencyConflict,
    RedisFull,
    SendingNotFound,
)
from jobs.producer import normalize_recipient
from jobs.recipients_file import first_valid
from jobs.redis_safety import is_out_of_memory
from jobs.settings import Settings, get_settings

DRY_RUN_ROWS = 10  # rows whose verdict --dry-run shows


class CliError(InvalidJob):
    """Bad input on the command line (a flag, a file): printed as one line, exit code 2."""


# The one place where errors become what a user of the CLI sees: a line on
# stderr and an exit code (bad input 2, a wait that timed out 3, Redis out of
# memory 75 — sysexits' EX_TEMPFAIL: try again later —, settings 78, a Redis
# that evicts keys among them).
EXIT_CODES: dict[type[BaseException], int] = {
    InvalidJob: 2,
    SendingNotFound: 2,
    IdempotencyConflict: 2,
    RedisFull: 75,
    RedisConnectionError: 69,  # sysexits' "service unavailable"
    ConfigurationError: 78,
    TimeoutError: 3,
    BulksendError: 1,  # any other of the family
}


def _explain(exc: BaseException) -> str:
    if isinstance(exc, SendingNotFound):
        return f"id: {exc}"
    if isinstance(exc, TimeoutError):
        return "timed out waiting for the sending to finish"
    return str(exc)


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")


@contextmanager
def _redis(settings: Settings) -> Iterator[Settings]:
    from bulksend.redis_server import redis_for

    with redis_for(settings.redis_url, settings.data_dir) as url:
        yield settings.model_copy(update={"redis_url": url})


def _with_producer(settings: Settings, action: Callable[[Any], Awaitable[Any]]) -> Any:
    from jobs.producer import Producer

    async def run() -> Any:
        producer = await Producer.connect(settings)
        try:
            return await action(producer)
        finally:
            await producer.close()

    return asyncio.run(run())


def send_job(args: argparse.Namespace, settings: Settings, stand_in: str | None = None) -> SendJob:
    """The job described by ``send CHANNEL`` flags, validated by its model.

    ``stand_in``: with ``--group``, a member's address, so the model has a recipient
    to validate (the group's contacts are the recipients)."""
    model = channels.get(args.channel).model
    try:
        data = model_data(args, model)
        if getattr(args, "group", None):
            if data.get("to") or data.get("sub") or getattr(args, "recipients_file", None):
                raise CliError("group: give recipients by group, by file or by --to, not two")
            data["to"] = [stand_in or "missing"]
        elif getattr(args, "recipients_file", None):
            if data.get("to") or data.get("sub"):
                raise CliError("recipients-file: give recipients by file or by --to, not both")
            if not os.access(args.recipients_file, os.R_OK):
                raise CliError(f"recipients-file: cannot read {args.recipients_file}")
            # The model needs a recipient to validate; the file's first usable one serves.
            normalize = partial(normalize_recipient, model.kind)
            data["to"] = [first_valid(args.recipients_file, normalize) or "missing"]
        if getattr(args, "attach", None):
            from jobs.email import Attachment

            limit = settings.max_attachment_bytes
            files = [Attachment.from_path(path, max_bytes=limit) for path in args.attach]
            data["attachments"] = [*data.get("attachments", []), *files]
    except FlagError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"attach: cannot read {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:  # an attachment that is too big
        raise CliError(f"attach: {exc}") from None
    return build(model, data)


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    group = getattr(args, "group", None)
    with _redis(settings) as live:

        async def submit(producer: Any) -> Any:
            stand_in = await producer.group_stand_in(group, args.channel) if group else None
            job = send_job(args, settings, stand_in)
            if group:
                sending_id = await producer.submit_group(job, group, args.idempotency_key)
            elif getattr(args, "recipients_file", None):
                sending_id = await producer.submit_file(
                    job, args.recipients_file, args.idempotency_key
                )
            else:
                sending_id = await producer.submit(job, args.idempotency_key)
            return await _followed(args, producer, sending_id)

        return _print_submitted(args, _with_producer(live, submit))


async def _followed(args: argparse.Namespace, producer: Any, sending_id: str) -> Any:
    """``--wait``: the final status; else the id."""
    if not args.wait:
        return {"id": sending_id}
    return await producer.wait(sending_id, timeout=args.timeout)


def _print_submitted(args: argparse.Namespace, result: dict[str, Any]) -> int:
    if args.json:
        _print_json(result)
    elif args.wait:
        _print_status(result)
    else:
        print(result["id"])
    return 0


def _print_status(status: dict[str, Any]) -> None:
    counts = " ".join(f"{k}={v}" for k, v in status["counts"].items())
    print(f"{status['id']} {status['state']} {counts}")
    delivery = status.get("delivery") or {}
    if any(delivery.values()):
        print("delivery " + " ".join(f"{k}={v}" for k, v in delivery.items() if v))
    stop = status.get("account")
    if stop:
        print(
            f"provider account {stop['state']}: {stop['code']} {stop['reason']} "
            f"(since {stop['since']}; `bulksend resume` lifts it)"
        )


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    with _redis(settings) as live:
        status = _with_producer(live, lambda p: p.status(args.id))
    if status is None:
        raise SendingNotFound(args.id)
    if args.json:
        _print_json(status)
    else:
        _print_status(status)
    return 0


def cmd_requeue(args: argparse.Namespace, settings: Settings) -> int:
    if args.unknown == args.failed:
        raise CliError("requeue: say what to requeue, exactly one of: --unknown, --failed")
    with _redis(settings) as live:
        moved = _with_producer(
            live, lambda p: p.requeue(args.id, "unknown" if args.unknown else "failed")
        )
    what = "with an unknown outcome" if args.unknown else "that failed"
    print(f"{moved} recipients {what} queued again")
    return 0


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    with _redis(settings) as live:
        status = _with_producer(live, lambda p: p.cancel(args.id))
    if args.json:
        _print_json(status)
    else:
        _print_status(status)
    return 0


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    from jobs.accounts import account_id, resume

    account = args.account or account_id(settings)
    expires_s = settings.result_ttl_days * 86400
    with _redis(settings) as live:
        lifted = _with_producer(
            live, lambda p: resume(p.redis, account, args.channel, expires_s=expires_s)
        )
    if lifted is None:
        print(f"account {account} was not stopped")
    else:
        print(f"account {account} resumed (was {lifted.state}: {lifted.code} {lifted.reason})")
    return 0


def _import_job(args: argparse.Namespace) -> ContactImport:
    return ContactImport.from_options(
        args.group,
        target=args.target,
        country=args.country,
        maps=args.map,
        encoding=args.encoding,
        delimiter=args.delimiter,
    )


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from jobs.contact_rows import ContactFile

    job = _import_job(args)
    if args.dry_run:
        contact_file = ContactFile(args.file, job.options())
        rows: list[dict[str, Any]] = []
        for found in contact_file.rows():
            rows.append({"row": found.number, "contact": found.contact, "error": found.error})
            if len(rows) == DRY_RUN_ROWS:
                break
        result = {**contact_file.describe(), "rows": rows}
        if args.json:
            _print_json(result)
        else:
            print(f"encoding {result['encoding']}, delimiter {result['delimiter']!r}")
            for column, field in result["mapping"].items():
                print(f"  {column!r} → {field}")
            for shown in rows:
                verdict = "ok" if shown["error"] is None else f"refused: {shown['error']}"
                print(f"  row {shown['row']}: {verdict}")
        return 0
    with _redis(settings) as live:

        async def submit(producer: Any) -> Any:
            sending_id = await producer.submit_import(job, args.file, args.idempotency_key)
            return await _followed(args, producer, sending_id)

        return _print_submitted(args, _with_producer(live, submit))


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    async def export(producer: Any) -> None:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        async for row in producer.report(args.id, args.status):
            writer.writerow(row)

    with _redis(settings) as live:
        _with_producer(live, export)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def listing(producer: Any) -> list[dict[str, Any]]:
        page, _ = await producer.sendings(args.limit, state=args.state, kind=args.kind)
        return list(page)

    with _redis(settings) as live:
        statuses = _with_producer(live, listing)
    if args.json:
        _print_json({"data": statuses})
    else:
        for status in statuses:
            _print_status(status)
    return 0


def cmd_results(args: argparse.Namespace, settings: Settings) -> int:
    async def export(producer: Any) -> int:
        if await producer.status(args.id) is None:
            raise SendingNotFound(args.id)
        n = 0
        async for record in producer.store.iter_results(args.id):
            sys.stdout.write(orjson.dumps(record).decode() + "\n")
            n += 1
        return n

    with _redis(settings) as live:
        _with_producer(live, export)
    return 0


def _suppression_args(args: argparse.Namespace) -> tuple[str, str | None]:
    """(list, address) of a ``suppress`` command, checked before Redis is started."""
    from jobs import suppression

    list_name = suppression.check_list(args.channel)
    address: str | None = getattr(args, "address", None)
    if address is not None:
        why = suppression.problem(list_name, address)
        if why is not None:
            raise CliError(f"address: {why}", field="address")
    return list_name, address


def cmd_suppress_add(args: argparse.Namespace, settings: Settings) -> int:
    from jobs import suppression

    list_name, address = _suppression_args(args)
    assert address is not None
    reason = args.reason or suppression.DEFAULT_REASON

    async def add(producer: Any) -> tuple[bool, Any]:
        added = await suppression.add(
            producer.redis, list_name, address, reason, push=settings.blacklist_sync
        )
        return added, await suppression.get(producer.redis, list_name, address)

    with _redis(settings) as live:
        added, entry = _with_producer(live, add)
    shown = suppression.normalize(list_name, address)
    if added:
        print(f"{shown} suppressed ({list_name})")
    else:
        print(f"{shown} was already suppressed ({list_name}): {suppression.describe(entry)}")
    return 0


def cmd_suppress_remove(args: argparse.Namespace, settings: Settings) -> int:
    from jobs import suppression

    list_name, address = _suppression_args(args)
    assert address is not None
    with _redis(settings) as live:
        removed = _with_producer(
            live,
            lambda p: suppression.remove(p.redis, list_name, address, push=settings.blacklist_sync),
        )
    shown = suppression.normalize(list_name, address)
    if not removed:
        raise CliError(f"address: {shown} is not on the {list_name} list", field="address")
    print(f"{shown} removed ({list_name})")
    return 0


def cmd_suppress_list(args: argparse.Namespace, settings: Settings) -> int:
    from jobs import suppression

    list_name, _ = _suppression_args(args)
    if args.limit < 1:
        raise CliError("limit: at least 1", field="limit")

    async def listing(producer: Any) -> tuple[list[Any], int]:
        found: list[Any] = []
        cursor = 0
        while len(found) < args.limit:
            step = min(args.limit - len(found), 1000)
            entries, cursor = await suppression.page(producer.redis, list_name, cursor, step)
            found += entries
            if cursor == 0:
                break
        return found[: args.limit], await suppression.count(producer.redis, list_name)

    with _redis(settings) as live:
        entries, total = _with_producer(live, listing)
    if args.json:
        _print_json({"data": entries, "total": total})
        return 0
    for entry in entries:
        sending = f"\t{entry['sending']}" if entry["sending"] else ""
        print(f"{entry['address']}\t{entry['source']}\t{entry['at']}\t{entry['reason']}{sending}")
    if total > len(entries):
        print(f"({len(entries)} of {total} shown; --limit N for more)", file=sys.stderr)
    return 0


def cmd_suppress_import(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from jobs import suppression

    list_name, _ = _suppression_args(args)
    if not os.access(args.file, os.R_OK) or os.path.isdir(args.file):
        raise CliError(f"file: cannot read {args.file}", field="file")
    reason = args.reason or f"imported from {Path(args.file).name}"
    with _redis(settings) as live:
        added, refused = _with_producer(
            live,
            lambda p: suppression.import_file(
                p.redis, list_name, args.file, reason, push=settings.blacklist_sync
            ),
        )
    print(f"{added} added ({list_name}), {len(refused)} lines refused")
    for line, why in refused:
        print(f"line {line}: {why}", file=sys.stderr)
    return 2 if refused else 0


def cmd_sms_info(args: argparse.Namespace, settings: Settings) -> int:
    from jobs import gsm

    try:
        info = gsm.analyze(args.text, args.encoding, trans=args.trans)
    except gsm.SmsTextError as exc:
        raise CliError(f"text: {exc} (provider code {exc.code})") from None
    except ValueError as exc:
        raise CliError(f"encoding: {exc}") from None
    result = {
        "encoding": info.encoding,
        "length": info.length,
        "parts": info.parts,
        "per_part": info.per_part,
        "offending": info.offending,
        "fits_sms": info.parts <= gsm.MAX_PARTS_SMS,
        "fits_landing": info.parts <= gsm.MAX_PARTS_LANDING,
    }
    if args.json:
        _print_json(result)
        return 0
    unit = "septets" if info.encoding != "utf-16" else "UTF-16 units"
    print(
        f"encoding {info.encoding}, {info.length} {unit}, {info.parts} part(s) "
        f"of up to {info.per_part}"
    )
    if info.offending:
        print("UCS-2 because of: " + " ".join(repr(c) for c in info.offending))
    if info.parts > gsm.MAX_PARTS_SMS:
        print(f"too long: needs {info.parts} parts, an SMS allows {gsm.MAX_PARTS_SMS}")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker.main import run

    with _redis(settings) as live:
        run(live)
    return 0


def cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from sandbox.server import serve

    serve(args.host, args.port, settings)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from bulksend import logs
    from web import create_app
    from web.auth import require_token

    require_token(settings)  # refused (exit 78) before anything is started
    with _redis(settings) as live, contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the end
        uvicorn.run(
            create_app(live),
            host=args.host,
            port=args.port,
            http="httptools",
            server_header=False,
            log_level="info",
            log_config=logs.uvicorn_config(settings.log_format),
            # On SIGTERM uvicorn stops accepting and lets requests in flight finish;
            # unbounded by default, so an orchestrator's SIGKILL (Kubernetes: 30 s)
            # would cut them silently and skip the lifespan's shutdown. Bounded below
            # that: what still runs is cancelled (and logged), then Redis is closed.
            timeout_graceful_shutdown=25,
        )
    return 0


def cmd_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    from bulksend.healthcheck import run

    return run(args.role, args.url, settings)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bulksend.demo import run_demo

    serve_port = args.port if args.serve else None
    return run_demo(
        settings, recipients=args.recipients, workers=args.workers, serve_port=serve_port
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="bulksend", description=__doc__.splitlines()[0])
    sub = root.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole pipeline on embedded defaults")
    demo.add_argument("--recipients", type=int, default=10_000)
    demo.add_argument("--workers", type=int, default=2)
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then keep the stack and `bulksend serve` running until Ctrl-C; prints its URL "
        "and a fresh token",
    )
    demo.add_argument("--port", type=int, default=8000, help="with --serve: its port")
    demo.set_defaults(handler=cmd_demo)

    sub.add_parser("worker", help="run one worker process").set_defaults(handler=cmd_worker)

    sandbox = sub.add_parser("sandbox", help="run the simulated provider")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8025)
    sandbox.set_defaults(handler=cmd_sandbox)

    serve = sub.add_parser(
        "serve", help="the web service: HTTP enqueue API, status, results, /metrics"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=cmd_serve)

    health = sub.add_parser(
        "healthcheck",
        help="a container's HEALTHCHECK: exit 0 healthy, 1 (one line on stderr) unhealthy",
    )
    health.add_argument("role", choices=["worker", "serve"])
    health.add_argument(
        "--url",
        help="worker: the Redis URL (default BULKSEND_REDIS_URL); serve: the service's base "
        "URL (default http://127.0.0.1:8000)",
    )
    health.set_defaults(handler=cmd_healthcheck)

    send = sub.add_parser("send", help="enqueue a sending")
    kinds = send.add_subparsers(dest="channel", required=True)
    for channel in channels.all_channels():
        if not channel.sendable:
            continue
        p = kinds.add_parser(channel.kind, help=channel.summary)
        add_model_flags(p, channel.model)
        if channel.attachments:
            p.add_argument("--attach", action="append", metavar="PATH", help="file to attach")
        if channel.recipients_file:
            p.add_argument(
                "--recipients-file",
                metavar="FILE",
                help="JSONL ({to, sub}) or CSV (to + sub columns), streamed: any size",
            )
            p.add_argument(
                "--group",
                metavar="NAME",
                help="the contacts imported into this group; their fields fill {var}",
            )
        p.add_argument("--idempotency-key", help="same key, same sending: enqueued once")
        p.add_argument("--wait", action="store_true", help="wait until the sending is final")
        p.add_argument("--timeout", type=float, help="with --wait: give up after N seconds")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(handler=cmd_send)

    status = sub.add_parser("status", help="a sending's state and counts")
    status.add_argument("id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    info = sub.add_parser("sms-info", help="encoding, length and parts of one SMS text")
    info.add_argument("text")
    info.add_argument("--encoding", default="auto", help="auto (default), gsm, gsm-pt, utf-16")
    info.add_argument("--trans", action="store_true", help="apply the provider's transliteration")
    info.add_argument("--json", action="store_true")
    info.set_defaults(handler=cmd_sms_info)

    requeue = sub.add_parser(
        "requeue", help="send again, on purpose, recipients in doubt, or failed"
    )
    requeue.add_argument("id")
    requeue.add_argument("--unknown", action="store_true", help="recipients recorded unknown")
    requeue.add_argument(
        "--failed", action="store_true", help="recipients recorded failed (attempts afresh)"
    )
    requeue.set_defaults(handler=cmd_requeue)

    resume = sub.add_parser("resume", help="lift a hold or halt of the provider account")
    resume.add_argument("--account", help="user@host (default: the configured provider account)")
    resume.add_argument("--channel", help="lift only this channel's stop (e.g. email)")
    resume.set_defaults(handler=cmd_resume)

    cancel = sub.add_parser("cancel", help="record recipients not yet sent cancelled")
    cancel.add_argument("id")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(handler=cmd_cancel)

    imp = sub.add_parser("import", help="import a contact CSV (one recipient per data row)")
    imp.add_argument("file")
    imp.add_argument(
        "--group",
        required=True,
        help="messaging: the group's name (found or created); mail: the contact_type_id",
    )
    imp.add_argument("--target", choices=("messaging", "mail"), default="messaging")
    imp.add_argument("--country", metavar="ISO2", help="region of national phone numbers")
    imp.add_argument(
        "--map", action="append", default=[], metavar="COLUMN=FIELD", help="repeatable"
    )
    imp.add_argument("--encoding", help="override the detected encoding (e.g. cp1252)")
    imp.add_argument("--delimiter", help="override the sniffed delimiter (, ; tab |)")
    imp.add_argument("--dry-run", action="store_true", help="show the mapping and first rows")
    imp.add_argument("--idempotency-key", help="same key, same import: imported once")
    imp.add_argument("--wait", action="store_true", help="wait until the import is final")
    imp.add_argument("--timeout", type=float, help="with --wait: give up after N seconds")
    imp.add_argument("--json", action="store_true", help="print one JSON object")
    imp.set_defaults(handler=cmd_import)

    listing = sub.add_parser("list", help="the sendings, newest first")
    listing.add_argument("--state", help="enqueuing, running or done")
    listing.add_argument("--kind", help="sms, email, …, contacts")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)

    report = sub.add_parser("report", help="a sending's recipients as CSV (formula-safe)")
    report.add_argument("id")
    report.add_argument("--status", help="only recipients in this state (e.g. rejected)")
    report.set_defaults(handler=cmd_report)

    results = sub.add_parser("results", help="export a sending's results as JSONL")
    results.add_argument("id")
    results.set_defaults(handler=cmd_results)

    _suppress_parser(sub)
    return root


def _suppress_parser(sub: Any) -> None:
    """``bulksend suppress add|remove|list|import --channel LIST``."""
    suppress = sub.add_parser(
        "suppress", help="addresses never to be sent to again (lists sms, voice, mailing)"
    )
    actions = suppress.add_subparsers(dest="action", required=True)
    channel = {
        "required": True,
        "metavar": "sms|voice|mailing",
        "help": "the list: sms (also landing, whatsapp), voice (also voice-audio), mailing (email)",
    }
    add = actions.add_parser("add", help="suppress an address (its first entry is kept)")
    add.add_argument("--channel", **channel)
    add.add_argument("address")
    add.add_argument("--reason", help="why (default: added by hand)")
    add.set_defaults(handler=cmd_suppress_add)

    remove = actions.add_parser("remove", help="take an address off a list (exit 2: not on it)")
    remove.add_argument("--channel", **channel)
    remove.add_argument("address")
    remove.set_defaults(handler=cmd_suppress_remove)

    listing = actions.add_parser("list", help="the entries of a list, in no particular order")
    listing.add_argument("--channel", **channel)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=cmd_suppress_list)

    imp = actions.add_parser(
        "import",
        help="suppress a file's addresses: one a line, or a CSV (an address, phone or email "
        "column, else the first); refused lines go to stderr and exit 2, the rest are added",
    )
    imp.add_argument("--channel", **channel)
    imp.add_argument("file")
    imp.add_argument("--reason", help="why (default: imported from FILE)")
    imp.set_defaults(handler=cmd_suppress_import)


def _log_as(settings: Settings) -> None:
    """Any command's warnings in ``BULKSEND_LOG_FORMAT``; the roles (worker, serve,
    sandbox) set their own logging up again, at INFO."""
    import logging

    from bulksend import logs

    logs.configure(settings.log_format, logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    try:
        _log_as(settings)
        code: int = args.handler(args, settings)
        return code
    except RedisConnectionError as exc:  # a Sentinel's MasterNotFoundError too
        where = connection.display(settings.redis_url)
        print(f"bulksend: error: redis_url: {where} does not answer: {exc}", file=sys.stderr)
        return EXIT_CODES[RedisConnectionError]
    except (BulksendError, TimeoutError, ResponseError) as exc:
        if isinstance(exc, ResponseError):  # a write Redis refused outside a submit
            if not is_out_of_memory(exc):
                raise
            exc = RedisFull("Redis is out of memory (maxmemory): refused; make room and retry")
        print(f"bulksend: error: {_explain(exc)}", file=sys.stderr)
        return next(code for kind, code in EXIT_CODES.items() if isinstance(exc, kind))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

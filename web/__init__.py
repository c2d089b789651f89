"""The web service (``bulksend serve``): the HTTP enqueue API, status and results, health
and metrics, and the API's own documentation, as one Starlette app.

It is another door into the same pipeline, not a second one: every request is
validated by the channel models and handed to ``jobs.Producer``, exactly as
``bulksend send`` and Python producers do. One idea per module:

    app.py       create_app(settings): the routes and middleware put together
    auth.py      bearer tokens (full, read-only), public paths
    limits.py    the body size limit, enforced while reading
    context.py   what handlers reach: the producer, the settings
    errors.py    the error family → status codes and one error shape, in one place
    enqueue.py   POST /v1/{kind}, one route per channel of the registry
    imports.py   POST /v1/imports (multipart contact CSV)
    sendings.py  GET /v1/sendings[/{id}[/results|/report]], cancel, requeue
    account.py   POST /v1/account/resume
    ops.py       /healthz, /readyz, /metrics (rendered by web.metrics)
    openapi.py   /openapi.json, generated from the routes and the models
    docs.py      /docs, that document as a page without JavaScript
"""

from web.app import create_app

__all__ = ["create_app"]

"""The streaming HTTP API (ASGI, FastAPI on uvicorn).

    workbench serve --workspace W --port 8787

=========================================  ==========  =====================================
``POST /v1/collect/{dataset}``             collect     one item (a JSON object) or up to
                                                       1,000 (a JSON array); 202 once durable
``GET /v1/profiles?identity=ns:value``     read        the unified profile, streaming applied
``GET /v1/segments/{name}/members/count``  read        members now
``GET /v1/memberships/stream``             read        server-sent events of membership
                                                       changes (``Last-Event-ID`` resumes)
``GET /v1/personalization?identity=``      read        memberships and the attributes allowed
                                                       for on-site personalization
``GET /healthz``, ``GET /metrics``         none        liveness; Prometheus text
=========================================  ==========  =====================================

Authentication: ``Authorization: Bearer <api key>`` (``workbench apikey create``); a
missing or unknown key is 401, a key without the scope or dataset 403. A request body over
``max_body`` bytes is 413; a queue over ``max_queue`` items is 429 with ``Retry-After``.
A batch is accepted whole or not at all: any bad item makes the answer 400 (or 413 for an
oversize item) listing every bad item with its path (``items[3].timestamp``) and reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from workbench.errors import InputError, NotFoundError
from workbench.streaming.engine import Overloaded

if TYPE_CHECKING:
    from workbench.streaming.service import StreamingService

log = logging.getLogger(__name__)

#: The most items one collect request may carry.
MAX_ITEMS = 1000

_ERRORS = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "path": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}


def _err(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "bad input (every bad item, with its path and reason)",
        401: "missing or unknown API key",
        403: "the API key does not allow this",
        404: "not found",
        413: "request or item too large",
        415: "not JSON",
        429: "overloaded: retry after Retry-After seconds",
    }
    return {
        c: {"description": text[c], "content": {"application/json": {"schema": _ERRORS}}}
        for c in codes
    }


def create_app(svc: StreamingService) -> FastAPI:
    """The ASGI app of a streaming service (started and stopped with the app)."""

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.hub.bind(asyncio.get_running_loop())
        yield

    app = FastAPI(
        title="Audience Workbench streaming API",
        version="1",
        description="Collect records and events in real time; read profiles, segment sizes "
        "and memberships; subscribe to membership changes.",
        lifespan=lifespan,  # type: ignore[arg-type]
    )
    app.state.svc = svc

    def auth(
        authorization: str | None, scope: str, dataset: str | None = None
    ) -> JSONResponse | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            svc.metrics.auth_failures.labels("missing").inc()
            return _err(
                401,
                "an API key is required: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = svc.verify(authorization[7:].strip())
        if key is None:
            svc.metrics.auth_failures.labels("unknown").inc()
            return _err(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        ok = key.allows(dataset, scope)
        if not ok:
            svc.metrics.auth_failures.labels("forbidden").inc()
            what = f"{scope} on dataset {dataset!r}" if dataset else scope
            return _err(403, f"API key {key.name!r} does not allow {what}")
        return None

    @app.post(
        "/v1/collect/{dataset}",
        status_code=202,
        summary="Send one record or event, or a batch of up to 1,000",
        responses={
            202: {
                "description": "durably stored",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "accepted": {"type": "integer"},
                                "ids": {"type": "array", "items": {"type": "integer"}},
                            },
                        }
                    }
                },
            },
            **_responses(400, 401, 403, 404, 413, 415, 429),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"type": "object"},
                                {
                                    "type": "array",
                                    "items": {"type": "object"},
                                    "maxItems": MAX_ITEMS,
                                },
                            ]
                        }
                    }
                },
            }
        },
    )
    async def collect(
        dataset: str, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Any:
        t0 = time.monotonic()
        denied = auth(authorization, "collect", dataset)
        if denied is not None:
            return denied
        if dataset not in svc.engine.state.datasets:
            svc.metrics.rejected.labels(dataset="?", reason="unknown_dataset").inc()
            return _err(404, f"no dataset named {dataset!r}")
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > svc.max_body:
            svc.metrics.rejected.labels(dataset=dataset, reason="too_large").inc()
            return _err(413, f"request body over {svc.max_body} bytes")
        body = await request.body()
        if len(body) > svc.max_body:
            svc.metrics.rejected.labels(dataset=dataset, reason="too_large").inc()
            return _err(413, f"request body over {svc.max_body} bytes")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            svc.metrics.rejected.labels(dataset=dataset, reason="malformed").inc()
            return _err(400, f"the body is not valid JSON: {e}")
        items = data if isinstance(data, list) else [data]
        if not items:
            return _err(400, "no items: send a JSON object or a non-empty array of objects")
        if len(items) > MAX_ITEMS:
            svc.metrics.rejected.labels(dataset=dataset, reason="too_many").inc()
            return _err(413, f"{len(items)} items: at most {MAX_ITEMS} per request")
        res = svc.validate(dataset, items)
        if res.errors:
            svc.metrics.rejected.labels(dataset=dataset, reason="invalid").inc(
                len({e.index for e in res.errors})
            )
            status = (
                413 if all("KB" in e.reason and "larger" in e.reason for e in res.errors) else 400
            )
            return JSONResponse(
                {
                    "error": f"{len({e.index for e in res.errors})} of {len(items)} items rejected; nothing was accepted",
                    "errors": [
                        {"index": e.index, "path": e.path, "reason": e.reason} for e in res.errors
                    ],
                },
                status_code=status,
            )
        rows = res.table.to_pylist()
        try:
            fut = svc.engine.submit(dataset, rows, items)
        except Overloaded as e:
            svc.metrics.rejected.labels(dataset=dataset, reason="overloaded").inc(len(items))
            return _err(429, str(e), headers={"Retry-After": str(int(e.retry_after + 0.999))})
        seqs = await asyncio.wrap_future(fut)
        svc.metrics.accepted.labels(dataset=dataset).inc(len(items))
        svc.metrics.request_seconds.labels("collect").observe(time.monotonic() - t0)
        return JSONResponse({"accepted": len(seqs), "ids": seqs}, status_code=202)

    def _identity_or_error(identity: str) -> int | JSONResponse:
        try:
            pid = svc.engine.lookup(identity)
        except (InputError, NotFoundError) as e:
            return _err(400, str(e))
        if pid is None:
            return _err(404, f"no profile for {identity}")
        return pid

    @app.get(
        "/v1/profiles",
        summary="The unified profile of an identity",
        responses=_responses(400, 401, 403, 404),
    )
    async def profile(
        identity: Annotated[str, Query(description="ns:value, e.g. email:ana@example.com")],
        authorization: Annotated[str | None, Header()] = None,
    ) -> Any:
        denied = auth(authorization, "read")
        if denied is not None:
            return denied
        pid = _identity_or_error(identity)
        if isinstance(pid, JSONResponse):
            return pid
        return JSONResponse(json.loads(json.dumps(svc.engine.profile(identity), default=str)))

    @app.get(
        "/v1/segments/{name}/members/count",
        summary="Members of a segment now",
        responses=_responses(401, 403, 404),
    )
    async def count(name: str, authorization: Annotated[str | None, Header()] = None) -> Any:
        denied = auth(authorization, "read")
        if denied is not None:
            return denied
        try:
            return await run_in_threadpool(svc.engine.count, name)
        except NotFoundError as e:
            return _err(404, str(e))

    @app.get(
        "/v1/personalization",
        summary="Segments and personalization attributes of a visitor (from memory)",
        responses=_responses(400, 401, 403),
    )
    async def personalization(
        identity: Annotated[str, Query(description="ns:value, any namespace")],
        authorization: Annotated[str | None, Header()] = None,
    ) -> Any:
        t0 = time.monotonic()
        denied = auth(authorization, "read")
        if denied is not None:
            return denied
        try:
            out = svc.engine.personalization(identity)
        except (InputError, NotFoundError) as e:
            return _err(400, str(e))
        svc.metrics.request_seconds.labels("personalization").observe(time.monotonic() - t0)
        return JSONResponse(json.loads(json.dumps(out, default=str)))

    @app.get(
        "/v1/memberships/stream",
        summary="Server-sent events of membership changes",
        responses={
            200: {
                "description": "text/event-stream; each event's id is its sequence number",
                "content": {"text/event-stream": {}},
            },
            **_responses(400, 401, 403),
        },
    )
    async def stream(
        request: Request,
        segment: Annotated[list[str] | None, Query(description="only these segments")] = None,
        last_event_id: Annotated[str | None, Header()] = None,
        after: Annotated[
            int | None,
            Query(ge=0, description="resume after this sequence number (like Last-Event-ID)"),
        ] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Any:
        denied = auth(authorization, "read")
        if denied is not None:
            return denied
        start = after
        if last_event_id is not None:
            if not last_event_id.strip().isdigit():
                return _err(400, "Last-Event-ID must be a sequence number")
            start = int(last_event_id.strip())
        wanted = set(segment or [])
        unknown = wanted - set(svc.engine.definitions)
        if unknown:
            return _err(400, f"unknown segment(s): {', '.join(sorted(unknown))}")
        return StreamingResponse(
            svc.hub.events(request, start, wanted),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/healthz", summary="Liveness and queue state")
    async def healthz() -> Any:
        return svc.health()

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> Any:
        body, ctype = svc.metrics.render()
        return PlainTextResponse(body, media_type=ctype)

    return app


__all__ = ["MAX_ITEMS", "create_app"]

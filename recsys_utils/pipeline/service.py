"""The recommendation service: a saved pipeline behind HTTP (FastAPI on uvicorn), safe by construction.

Endpoints (``create_app(ServiceConfig(model_path=...))``; started by ``recsys-serve``):

* ``GET /recommend?user_id=&k=`` -- the pipeline's list (recall → rank → business rules → advert)
  for a known user; an unknown user (not in the model, or without history in it) gets a fallback:
  their recent items folded in (after ``POST /events``) or else decayed popularity; the answer says
  which (``source``);
* ``GET /similar/{item_id}?k=`` -- the most similar items (the item-item channel, else factors);
* ``POST /events`` -- ``{"events": [{"user_id", "item_id", "event", "timestamp"?}, ...]}``: feedback
  for decayed popularity and fold-in;
* ``GET /health``, ``GET /metrics`` (Prometheus text: :mod:`~recsys_utils.pipeline.service_metrics`);
* ``POST /admin/reload`` (``{"path": ...}`` optional, same folder as the model) -- loads the new file
  through the safe loader, then swaps one reference: requests in flight finish on the old model.

Every bad input is answered with a 4xx and a one-line ``{"error": ...}`` (never a 500 or a
traceback): a malformed or missing id or k (422), k out of range (422), an unknown item (404), an
oversized body (413), a model file the loader refuses (422; the old model keeps serving).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsys_utils.core.vocabulary import EVENT_WEIGHTS
from recsys_utils.pipeline.service_metrics import ServiceMetrics
from recsys_utils.pipeline.service_state import LoadedModel, Realtime
from recsys_utils.pipeline.serving_file import PipelineFormatError

MAX_ID = 2**63 - 1
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    """How the service runs: the model file and the limits it enforces."""

    model_path: Path
    max_k: int = 100
    max_body_bytes: int = 64 * 1024
    max_events: int = 1000
    half_life_hours: float = 24.0
    max_per_category: int | None = 3
    sponsored: tuple[int, ...] = ()
    sponsored_position: int = 2


class BadRequest(Exception):
    """A request the service refuses: ``status`` (4xx) and a one-line ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class Event(BaseModel):
    """One feedback event; ``timestamp`` in seconds (default: now)."""

    model_config = ConfigDict(extra="forbid")
    user_id: int = Field(ge=0, le=MAX_ID, strict=True)
    item_id: int = Field(ge=0, le=MAX_ID, strict=True)
    event: Literal[tuple(EVENT_WEIGHTS)]  # type: ignore[valid-type]
    timestamp: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(min_length=1)


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str | None = None


def one_line(error: ValidationError | RequestValidationError) -> str:
    """The first validation problem as ``where: what`` on one line."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    return f"{where}: {first.get('msg', 'invalid')}".replace("\n", " ")[:300]


class Service:
    """The app's state: the current :class:`LoadedModel` (one reference, swapped whole), the real-time
    state and the metrics."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.metrics = ServiceMetrics()
        self.model = self._load(config.model_path)
        self.realtime = Realtime(self.model.n_items, self.model.popularity, config.half_life_hours)
        self.metrics.set_model(self.model.version, self.model.run, self.model.loaded_at)
        self.reload_lock = threading.Lock()

    def _load(self, path: Path) -> LoadedModel:
        c = self.config
        return LoadedModel(path, c.max_per_category, c.sponsored, c.sponsored_position)

    def check_k(self, k: int) -> int:
        if not 1 <= k <= self.config.max_k:
            raise BadRequest(422, f"k must be between 1 and {self.config.max_k}, got {k}")
        return k

    def recommend(self, user_id: int, k: int) -> dict:
        model = self.model  # one reference for the whole request: a reload cannot change it under us
        user = model.known(user_id)
        advert = -1
        if user is not None:
            items, scores, advert = model.recommend(user, k)
            source = "pipeline"
        else:
            session, weights = self.realtime.session(user_id)
            if len(session):
                items, scores = model.top_items(model.fold_in(session, weights), k, exclude=session)
                source = "session"
            else:
                items, scores = model.top_items(self.realtime.counts(), k)
                source = "popularity"
        self.metrics.served(source)
        return {"user_id": user_id, "items": model.item_ids[items].tolist(),
                "scores": [None if not np.isfinite(s) else round(float(s), 6) for s in scores],
                "source": source, "sponsored": int(model.item_ids[advert]) if advert >= 0 else None,
                "model_version": model.version}

    def similar(self, item_id: int, k: int) -> dict:
        model = self.model
        item = model.item_index.get(item_id)
        if item is None:
            raise BadRequest(404, f"unknown item_id {item_id}")
        items, scores = model.similar(item, k)
        return {"item_id": item_id, "items": model.item_ids[items].tolist(),
                "scores": [round(float(s), 6) for s in scores], "model_version": model.version}

    def events(self, batch: EventBatch) -> dict:
        if len(batch.events) > self.config.max_events:
            raise BadRequest(413, f"at most {self.config.max_events} events per request, got {len(batch.events)}")
        model = self.model
        items = np.empty(len(batch.events), dtype=np.int64)
        for n, event in enumerate(batch.events):
            item = model.item_index.get(event.item_id)
            if item is None:
                raise BadRequest(404, f"events.{n}: unknown item_id {event.item_id}")
            items[n] = item
        now = time.time()
        seconds = np.array([now if e.timestamp is None else e.timestamp for e in batch.events])
        weights = np.array([EVENT_WEIGHTS[e.event] for e in batch.events])
        unknown = [n for n, e in enumerate(batch.events) if model.known(e.user_id) is None]
        self.realtime.add(items, seconds, weights, [batch.events[n].user_id for n in unknown],
                          [int(items[n]) for n in unknown], [float(weights[n]) for n in unknown])
        for event in batch.events:
            self.metrics.events.labels(event=event.event).inc()
        return {"accepted": len(batch.events), "folded_in_users": len({batch.events[n].user_id for n in unknown})}

    def reload(self, path: str | None) -> dict:
        """Load ``path`` (default: the configured file) through the safe loader, then swap (one assignment)."""
        target = Path(path) if path else self.config.model_path
        folder = self.config.model_path.resolve().parent
        if target.resolve().parent != folder:
            raise BadRequest(403, f"reload: the model must be in {folder}, got {target}")
        with self.reload_lock:
            try:
                new = self._load(target)
            except (PipelineFormatError, ValueError) as error:
                self.metrics.reloads.labels(outcome="refused").inc()
                raise BadRequest(422, f"reload refused, still serving {self.model.version}: "
                                      f"{str(error).splitlines()[0]}") from None
            if new.n_items != self.model.n_items or not np.array_equal(new.item_ids, self.model.item_ids):
                self.realtime = Realtime(new.n_items, new.popularity, self.config.half_life_hours)
            previous, self.model = self.model, new  # the atomic swap
            self.metrics.set_model(new.version, new.run, new.loaded_at)
            self.metrics.reloads.labels(outcome="ok").inc()
        return {"model_version": new.version, "previous": previous.version, "path": str(target)}

    def health(self) -> dict:
        model = self.model
        return {"status": "ok", "model_version": model.version, "run": model.run,
                "n_users": len(model.user_ids), "n_items": model.n_items}


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BadRequest(413, f"body larger than {limit} bytes" if declared.isdigit() else "bad content-length")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def _install_handlers(app: FastAPI, service: Service) -> None:
    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, error: BadRequest) -> JSONResponse:
        return _error(error.status, error.reason)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return _error(422, one_line(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail).replace("\n", " "))

    app.add_middleware(Observe, service=service)


class Observe:
    """Pure ASGI middleware (cheaper than ``BaseHTTPMiddleware``): refuses a declared oversized body with
    413, answers an unexpected exception with a one-line 500 (logged here, no traceback to the client),
    and records every answer's endpoint, status and latency in the service's metrics."""

    def __init__(self, app, service: Service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        begin, status, started = time.perf_counter(), 500, False

        async def watch(message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        limit = self.service.config.max_body_bytes
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        try:
            if declared.isdigit() and int(declared) > limit:
                await _error(413, f"body larger than {limit} bytes")(scope, receive, watch)
            else:
                await self.app(scope, receive, watch)
        except Exception as error:  # a bug, not a bad request
            LOG.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _error(500, f"internal error: {type(error).__name__}")(scope, receive, watch)
        endpoint = getattr(scope.get("route"), "path", "unmatched")
        self.service.metrics.observe(endpoint, scope.get("method", ""), status, time.perf_counter() - begin)


def create_app(config: ServiceConfig) -> FastAPI:
    """The FastAPI app serving ``config.model_path`` (see the module docstring for the endpoints)."""
    service = Service(config)
    app = FastAPI(title="recsys_utils recommendation service", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    _install_handlers(app, service)
    ids = {"ge": 0, "le": MAX_ID}

    @app.get("/recommend")
    async def recommend(user_id: int = Query(..., **ids), k: int = Query(10)) -> JSONResponse:  # noqa: B008
        return JSONResponse(service.recommend(user_id, service.check_k(k)))  # plain JSON: no re-encoding pass

    @app.get("/similar/{item_id}")
    async def similar(item_id: int = PathParam(..., **ids), k: int = Query(10)) -> JSONResponse:  # noqa: B008
        return JSONResponse(service.similar(item_id, service.check_k(k)))

    @app.post("/events")
    async def events(request: Request) -> dict:
        body = await read_body(request, config.max_body_bytes)
        try:
            batch = EventBatch.model_validate_json(body)
        except ValidationError as error:
            raise BadRequest(422, one_line(error)) from None
        return service.events(batch)

    @app.get("/health")
    def health() -> dict:
        return service.health()

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(service.metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload")
    async def reload(request: Request) -> dict:
        body = await read_body(request, config.max_body_bytes)
        try:
            wanted = ReloadRequest.model_validate_json(body) if body.strip() else ReloadRequest()
        except ValidationError as error:
            raise BadRequest(422, one_line(error)) from None
        return await run_in_threadpool(service.reload, wanted.path)  # loading never blocks the event loop

    return app


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int | None = None,
                    timeout: float = 20.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yields the base URL; always stops it."""
    import uvicorn

    port = free_port(host) if port is None else port
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"serve_in_thread: uvicorn did not start on {host}:{port}")
            time.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)

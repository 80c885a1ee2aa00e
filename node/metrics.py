"""Prometheus metrics: requests, latencies, peer-auth failures.

Under gunicorn with several workers, ``autospace serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` before anything imports ``prometheus_client``; each
worker then writes its samples to files there and ``/metrics`` aggregates them
(``deploy/gunicorn.conf.py`` marks dead workers). Without it the metrics are
per process, which is exact for the single-process dev server.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from connectors.http.peer import peer_rejected
from node.context import Surface, node_context

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "autospace_http_requests_total", "HTTP requests answered", ["method", "endpoint", "status"]
)
LATENCY = Histogram(
    "autospace_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "endpoint"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PEER_AUTH_FAILURES = Counter(
    "autospace_peer_auth_failures_total", "Peer calls refused, by reason", ["reason"]
)


def _count_rejection(_sender: Any, reason: Any = None, **_: Any) -> None:
    PEER_AUTH_FAILURES.labels(reason=str(reason)).inc()


peer_rejected.connect(_count_rejection, weak=False)


def registry_for_scrape() -> CollectorRegistry:
    """The registry to expose: aggregated over gunicorn workers when multiprocess is on."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def init_app(app: Flask) -> None:
    ctx = node_context(app)

    @app.before_request
    def _start() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - started)
            REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        return response

    bp = Blueprint("metrics", __name__)

    @bp.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry_for_scrape()), mimetype=CONTENT_TYPE_LATEST)

    # No API key (scrapers are trusted by network placement, as usual for Prometheus); on
    # the management address when that is separate.
    ctx.blueprints.add(bp, surface=Surface.OPERATIONS)

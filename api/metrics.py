"""Prometheus metrics of the API: requests by route and status, event streams, and the
service's state read from Postgres at each scrape (jobs and runs by status, the queue, the
outbox). Served at GET /metrics (an admin key, or OPTARENA_METRICS_PUBLIC).

With several API processes (OPTARENA_API_WORKERS) `python -m api` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before they start, and a scrape of any of them
sums every process's counters (prometheus-client's multiprocess mode).
"""

import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Scope

from core.models import Job, JobStatus, OutboxMessage, Run, RunStatus

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "optarena_http_requests",
    "Requests answered, by route and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "optarena_http_request_seconds",
    "Time from a request to its response's headers (an event stream's first byte)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STREAMS = Gauge("optarena_sse_streams_open", "Event streams open", multiprocess_mode="livesum")
LAG = Histogram(
    "optarena_sse_lag_seconds",
    "From the end of an epoch on the worker to its event leaving the API (live events)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def _route(scope: Scope) -> str:
    """The matched route's template (so ids do not make a series each), or "unmatched"."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def observe_headers(scope: Scope, seconds: float) -> None:
    """A request's time to its response's headers, by method and route template."""
    LATENCY.labels(scope["method"], _route(scope)).observe(seconds)


def observe_end(scope: Scope, status: int) -> None:
    """A request counted once it ends, by method, route template and status."""
    REQUESTS.labels(scope["method"], _route(scope), str(status)).inc()


def observe_lag(ended: float | None) -> None:
    """A live record event is leaving: how long since its epoch ended (a Unix time)."""
    if ended is not None:
        LAG.observe(max(0.0, time.time() - ended))


class ServiceState(Collector):
    """Gauges read from Postgres when scraped: the same numbers from whichever process."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        try:
            with self.sessions() as session:
                jobs = dict(
                    session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
                )
                runs = dict(
                    session.execute(select(Run.status, func.count()).group_by(Run.status)).all()
                )
                oldest_queued = session.scalar(
                    select(func.min(Run.created_at)).where(Run.status == RunStatus.QUEUED)
                )
                unsent, oldest_unsent = session.execute(
                    select(func.count(), func.min(OutboxMessage.created_at)).where(
                        OutboxMessage.sent_at.is_(None)
                    )
                ).one()
        except Exception as error:  # a scrape during an outage still answers
            log.warning("service state not read from Postgres: %s", error)
            up = GaugeMetricFamily("optarena_postgres_up", "Whether Postgres answered the scrape")
            up.add_metric([], 0)
            yield up
            return
        now = datetime.now(UTC)
        up = GaugeMetricFamily("optarena_postgres_up", "Whether Postgres answered the scrape")
        up.add_metric([], 1)
        yield up
        by_job = GaugeMetricFamily("optarena_jobs", "Jobs by status", labels=["status"])
        for job_status in JobStatus:
            by_job.add_metric([job_status.value], jobs.get(job_status, 0))
        yield by_job
        by_run = GaugeMetricFamily("optarena_runs", "Runs by status", labels=["status"])
        for run_status in RunStatus:
            by_run.add_metric([run_status.value], runs.get(run_status, 0))
        yield by_run
        queued = GaugeMetricFamily("optarena_queue_depth", "Runs waiting for a worker")
        queued.add_metric([], runs.get(RunStatus.QUEUED, 0))
        yield queued
        age = GaugeMetricFamily(
            "optarena_oldest_queued_run_age_seconds",
            "How long since the oldest queued run was made (0: none queued)",
        )
        age.add_metric([], (now - oldest_queued).total_seconds() if oldest_queued else 0.0)
        yield age
        backlog = GaugeMetricFamily("optarena_outbox_unsent", "Messages not yet sent to the broker")
        backlog.add_metric([], unsent)
        yield backlog
        behind = GaugeMetricFamily(
            "optarena_outbox_oldest_unsent_age_seconds", "Age of the oldest unsent message"
        )
        behind.add_metric([], (now - oldest_unsent).total_seconds() if oldest_unsent else 0.0)
        yield behind


class _Process(Collector):
    """This process's own series (the default registry) inside a scrape's registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry(sessions: sessionmaker[Session]) -> CollectorRegistry:
    """What one scrape reports: every API process's series, and the service's state."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Process())
    registry.register(ServiceState(sessions))
    return registry

"""``casestream projections run|rebuild NAME``: feed a projection from the log, or rebuild it.

:data:`PROJECTIONS` maps each name to a factory ``Settings -> ManagedProjection`` (a
``projections.contract.Projection`` that can also ``wipe()`` its keys for the topic prefix,
``summary()`` what it holds and ``close()``). Heavy imports (Kafka, Redis) happen when a
command runs, not when ``casestream`` starts.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from streams.settings import Settings, load_settings

if TYPE_CHECKING:
    from typing import Protocol

    from projections.contract import Projection, RunStats

    class ManagedProjection(Projection, Protocol):
        def wipe(self) -> int: ...
        def summary(self) -> dict[str, int]: ...
        def close(self) -> None: ...


log = logging.getLogger("casestream.projections")


def _session(settings: Settings) -> ManagedProjection:
    from projections.session import SessionProjection

    return SessionProjection.from_settings(settings)


def _analytics(settings: Settings) -> ManagedProjection:
    from projections.analytics import AnalyticsProjection

    projection: ManagedProjection = AnalyticsProjection.from_settings(settings)
    return projection


def _crm(settings: Settings) -> ManagedProjection:
    from projections.crm.projection import CrmProjection

    projection: ManagedProjection = CrmProjection.from_settings(settings)
    return projection


#: Projection name -> factory. Add a projection here to get ``run`` and ``rebuild``.
PROJECTIONS: dict[str, Callable[[Settings], ManagedProjection]] = {
    "session": _session,
    "analytics": _analytics,
    "crm": _crm,
}

projections_app = typer.Typer(
    help="Run and rebuild the read-side projections (session state, ...).",
    no_args_is_help=True,
)
NameArg = Annotated[str, typer.Argument(help=f"Projection: {', '.join(PROJECTIONS)}.")]


def follow(
    settings: Settings,
    projection: Projection,
    *,
    stop: threading.Event | None = None,
    until_caught_up: bool = False,
    on_batch: Callable[[RunStats], None] | None = None,
) -> tuple[RunStats, int]:
    """``run_projection``; returns its stats and how many times it replayed from the
    store's positions because the store had lost writes."""
    from projections.runner import run_projection

    stats = run_projection(
        settings, projection, stop=stop, until_caught_up=until_caught_up, on_batch=on_batch
    )
    return stats, stats.restarts


def _build(name: str) -> tuple[Settings, ManagedProjection]:
    if name not in PROJECTIONS:
        known = ", ".join(sorted(PROJECTIONS))
        raise typer.BadParameter(f"unknown projection {name!r}; choose one of: {known}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()
    return settings, PROJECTIONS[name](settings)


@projections_app.command()
def run(name: NameArg, every: float = 2.0) -> None:
    """Feed NAME from its positions until Ctrl-C, printing progress every EVERY seconds."""
    settings, projection = _build(name)
    stop = threading.Event()

    def interrupt(*_: Any) -> None:
        stop.set()  # finish the batch in hand; a second Ctrl-C interrupts at once
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, interrupt)
    last = [0.0]

    def progress(stats: RunStats) -> None:
        if time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            typer.echo(f"{name}: {_line(stats)}")

    typer.echo(f"{name}: reading {', '.join(projection.topics())} (Ctrl-C to stop)")
    try:
        stats, restarts = follow(settings, projection, stop=stop, on_batch=progress)
    except Exception as exc:
        if not stop.is_set():
            raise
        typer.echo(f"{name}: stopped while the store was failing: {exc!r}", err=True)
        raise typer.Exit(1) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        projection.close()
    typer.echo(f"{name}: stopped; {_line(stats)}, restarts {restarts}")


@projections_app.command()
def rebuild(name: NameArg) -> None:
    """Replay NAME from offset 0 into a fresh store, swap it in, remove the old one; print
    counts (see ``projections.rebuild``)."""
    from projections.rebuild import REBUILDS

    if name not in REBUILDS:
        known = ", ".join(sorted(REBUILDS))
        raise typer.BadParameter(f"unknown projection {name!r}; choose one of: {known}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    started = time.monotonic()
    report = REBUILDS[name](load_settings())
    typer.echo(f"{name}: rebuilt in {time.monotonic() - started:.1f}s; live: {report['live']}")
    typer.echo(json.dumps(report, sort_keys=True, default=str))


def _line(stats: RunStats) -> str:
    return f"applied {stats.applied} (undecodable {stats.undecodable}, retries {stats.retries})"


__all__ = ["PROJECTIONS", "follow", "projections_app"]

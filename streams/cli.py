"""``casestream``: the command line of every deployable."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from streams.settings import Settings, load_settings

app = typer.Typer(
    help="casestream: an event-sourced AI customer-service agent on Kafka.",
    no_args_is_help=True,
    add_completion=False,
)
topics_app = typer.Typer(
    help="Create and list the topics of the topic registry.", no_args_is_help=True
)
app.add_typer(topics_app, name="topics")


def _register_subcommands() -> None:
    from projections.analytics.cli import analytics_app
    from projections.cli import projections_app

    app.add_typer(analytics_app, name="analytics", help="Query the analytics store (ClickHouse).")
    app.add_typer(projections_app, name="projections", help="Run and rebuild the projections.")
    from models.cli import register as register_models

    register_models(app)
    from agent.evaluate import eval_conversations_command
    from models.cli import eval_app

    eval_app.command("conversations")(eval_conversations_command)
    from kb.cli import kb_app

    app.add_typer(kb_app, name="kb", help="Knowledge base: ingest articles, search, evaluate.")


_register_subcommands()


def _settings(**overrides: object) -> Settings:
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def demo() -> None:
    """Run the blueprint's conversations through the log driver (no broker) and print them."""
    from replay.demo import run_demo
    from streams.bootstrap import build_steps

    counts = run_demo(build_steps(_settings()), echo=typer.echo)
    typer.echo(f"\ndecisions: {json.dumps(counts, sort_keys=True)}")


@app.command()
def worker(
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
    loglevel: Annotated[str, typer.Option(help="crit|error|warn|info|debug")] = "warn",
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (0 = off).")] = None,
) -> None:
    """Start the live driver: the Faust worker running the enrich and decide agents."""
    from faust.worker import Worker
    from prometheus_client import start_http_server

    from streams.app import create_app
    from streams.bootstrap import build_codec, build_model
    from streams.kafka import create_topics

    settings = _settings(kafka_bootstrap=bootstrap, worker_metrics_port=metrics_port)
    created = create_topics(settings)
    if created:
        typer.echo(f"created topics: {', '.join(created)}", err=True)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr="127.0.0.1")
        typer.echo(f"metrics on http://127.0.0.1:{settings.worker_metrics_port}/metrics", err=True)
    if settings.event_loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    faust_app = create_app(settings, build_model(settings), build_codec(settings))
    runner = Worker(faust_app, loglevel=loglevel, quiet=True)
    # Faust's progress spinner sets the root logger to DEBUG for the worker's whole life
    # when the level is warn or above (faust/worker.py _setup_spinner_handler), so every
    # debug call in aiokafka/faust is formatted and filtered: no spinner, the level holds.
    runner.spinner = None
    runner.execute_from_commandline()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """Serve the web-chat connector (HTTP API + WebSocket replies + /metrics)."""
    from connectors.webchat import serve as run

    run(_settings(http_host=host, http_port=port))


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic of the registry that does not exist yet."""
    from streams.kafka import create_topics

    created = create_topics(_settings())
    typer.echo("\n".join(created) if created else "all topics exist")


@topics_app.command("list")
def topics_list() -> None:
    """Print the topic registry: names, partitions, key, retention, what each carries."""
    from streams.topics import ALL_TOPICS, Topics

    settings = _settings()
    names = Topics(settings.topic_prefix)
    for spec in ALL_TOPICS:
        parts = spec.partitions or settings.partitions
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms // 86_400_000}d"
        typer.echo(f"{names.name(spec):40} p={parts:<3} key={spec.key:28} {retention:8} {spec.doc}")


@app.command()
def archive(
    topic: Annotated[list[str], typer.Option(help="Topic suffix (e.g. conversations.inbound).")],
    out: Annotated[Path, typer.Option(help="Directory for the .avro files.")] = Path("archive"),
) -> None:
    """Copy topics, byte for byte, into Avro container files (one per topic)."""
    from replay.archive import write_archive
    from streams.kafka import read_topic

    settings = _settings()
    for suffix in topic:
        name = f"{settings.topic_prefix}.{suffix}"
        count = write_archive(out / f"{name}.avro", read_topic(settings, name))
        typer.echo(f"{name}: {count} records -> {out / (name + '.avro')}")


@app.command()
def replay(
    from_file: Annotated[Path | None, typer.Option(help="Archive of the inbound topic.")] = None,
    from_kafka: Annotated[bool, typer.Option(help="Read the inbound topic from Kafka.")] = False,
    offset: Annotated[int, typer.Option(help="Start offset (Kafka).")] = 0,
    since: Annotated[str | None, typer.Option(help="Start time, ISO 8601 (Kafka).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write every output to this archive.")] = None,
    quiet: Annotated[bool, typer.Option(help="Only print the summary.")] = False,
    results: Annotated[
        list[Path] | None,
        typer.Option(
            help="With --from-file: archives of the enriched and outbound topics holding the"
            " recorded action results (repeat the option)."
        ),
    ] = None,
    perform_actions: Annotated[
        bool,
        typer.Option(
            help="Perform requested actions with this machine's adapters (mail, refunds, LLM)"
            " instead of reading their recorded results: a what-if run, never an audit."
        ),
    ] = False,
) -> None:
    """Re-run the processors over the log (audit): print decisions, or archive outputs.

    Actions are never performed again: each ActionRequested is answered with its recorded
    result (from Kafka with --from-kafka, from --results archives with --from-file), so
    the decisions come out as they were made. A request without a recorded result yields
    nothing and is counted as ``unrecorded``.
    """
    from replay.archive import read_archive, write_archive
    from replay.driver import LogDriver, recorded_from_archives, recorded_from_kafka
    from streams.act import ActionRecords
    from streams.bootstrap import build_steps
    from streams.kafka import read_topic
    from streams.steps import Record

    settings = _settings()
    steps = build_steps(settings)
    if from_file is not None:
        records = read_archive(from_file)
    elif from_kafka:
        start_ts = int(datetime.fromisoformat(since).timestamp() * 1000) if since else None
        records = read_topic(
            settings, steps.topics.inbound, start_offset=offset, start_timestamp_ms=start_ts
        )
    else:
        raise typer.BadParameter("give --from-file FILE or --from-kafka")
    recorded: ActionRecords | None = None
    if not perform_actions:
        if from_file is not None:
            recorded = recorded_from_archives(results or [], steps.codec)
        else:
            recorded = recorded_from_kafka(settings, steps.codec)
    elif results:
        raise typer.BadParameter("--results and --perform-actions exclude each other")
    driver = LogDriver(steps, recorded=recorded)
    counts: dict[str, int] = {}
    collected: list[Record] = []
    for n, output in enumerate(driver.run(records)):
        kind = type(output.event).__name__
        counts[kind] = counts.get(kind, 0) + 1
        if out is not None:
            collected.append(Record(output.topic, 0, n, output.key, output.value, 0))
        if not quiet and kind == "DecisionMade":
            d = output.event
            typer.echo(
                f"{output.key.decode()} {getattr(d, 'message_id', '')}: "
                f"{getattr(d, 'action', '')} ({getattr(d, 'reason', '')})"
            )
    if out is not None:
        write_archive(out, collected)
    if driver.unrecorded:
        counts["unrecorded"] = len(driver.unrecorded)
    typer.echo(json.dumps(counts, sort_keys=True))


@app.command()
def up(only: Annotated[str | None, typer.Option(help="kafka, redis or triton")] = None) -> None:
    """Start the local Kafka broker (KRaft) and Redis on 127.0.0.1."""
    from streams import services

    sys.exit(services.main(["up", *(["--only", only] if only else [])]))


@app.command()
def down(
    only: Annotated[str | None, typer.Option(help="kafka, redis or triton")] = None,
    wipe: Annotated[bool, typer.Option(help="Delete their data too.")] = False,
) -> None:
    """Stop the local Kafka broker, Redis and (if running) Triton."""
    from streams import services

    args = ["down", *(["--only", only] if only else []), *(["--wipe"] if wipe else [])]
    sys.exit(services.main(args))


@app.command()
def status() -> None:
    """Show whether the local services are running."""
    from streams import services

    sys.exit(services.main(["status"]))

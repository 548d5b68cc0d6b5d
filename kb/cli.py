"""``casestream kb``: ingest a directory of articles, search, and evaluate retrieval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kb.bootstrap import (
    DEFAULT_STORE,
    KbConfig,
    build_embedder,
    build_index,
    build_sink,
    build_store,
)
from kb.ingest import DEFAULT_TENANT

kb_app = typer.Typer(
    help="Knowledge base: ingest articles, search them, evaluate retrieval.",
    no_args_is_help=True,
)

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="Tenant (index namespace).")]
Store = Annotated[Path, typer.Option(help="Local store: index, passage catalogue, events.")]
PineconeHost = Annotated[
    str | None,
    typer.Option(envvar="CASESTREAM_PINECONE_HOST", help="Pinecone index host; unset = local."),
]
PineconeKey = Annotated[
    str | None, typer.Option(envvar="CASESTREAM_PINECONE_API_KEY", help="Pinecone API key.")
]
Variant = Annotated[str, typer.Option(help="Embedder variant: int8 or fp32.")]


def _config(
    store: Path, host: str | None, key: str | None, variant: str, bootstrap: str | None = None
) -> KbConfig:
    return KbConfig(
        store=store,
        pinecone_host=host,
        pinecone_api_key=key,
        kafka_bootstrap=bootstrap,
        embedder_variant=variant,
    )


@kb_app.command("ingest")
def ingest_cmd(
    directory: Annotated[Path, typer.Argument(help="Folder of Markdown articles.")],
    tenant: Tenant = DEFAULT_TENANT,
    store: Store = DEFAULT_STORE,
    pinecone_host: PineconeHost = None,
    pinecone_api_key: PineconeKey = None,
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap: record events on Kafka, not a file.")
    ] = None,
    variant: Variant = "int8",
) -> None:
    """Chunk, embed and index the articles; report conflicts, duplicates, invalid files."""
    from kb.ingest import ingest

    if not directory.is_dir():
        raise typer.BadParameter(f"{directory} is not a directory")
    config = _config(store, pinecone_host, pinecone_api_key, variant, bootstrap)
    report = ingest(
        directory,
        tenant=tenant,
        embedder=build_embedder(config),
        index=build_index(config),
        store=build_store(config),
        sink=build_sink(config),
        progress=lambda msg: typer.echo(msg, err=True),
    )
    for s in report.superseded:
        typer.echo(f"superseded  {s.article_id} v{s.version} (by v{s.by_version}) {s.path.name}")
    for d in report.duplicates:
        typer.echo(
            f"duplicate   {d.dropped} ~ {d.kept}: jaccard {d.jaccard:.2f}, cosine {d.cosine:.2f}"
            f" (serving {d.kept})"
        )
    for bad in report.invalid:
        typer.echo(f"invalid     {bad.path.name}: {bad.reason}")
    typer.echo(json.dumps(report.summary()))


@kb_app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="The question.")],
    tenant: Tenant = DEFAULT_TENANT,
    k: Annotated[int, typer.Option("-k", help="Articles to show.")] = 5,
    store: Store = DEFAULT_STORE,
    pinecone_host: PineconeHost = None,
    pinecone_api_key: PineconeKey = None,
    variant: Variant = "int8",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Print the best passage of the top articles, with their scores and the confidence."""
    from kb.retrieve import Retriever

    config = _config(store, pinecone_host, pinecone_api_key, variant)
    retriever = Retriever(build_embedder(config), build_index(config), build_store(config))
    result = retriever.search(query, tenant=tenant, k=k)
    if as_json:
        hits = [
            {f: getattr(h, f) for f in ("article_id", "title", "passage_id", "vector", "bm25")}
            | {"fused": h.fused}
            for h in result.hits
        ]
        typer.echo(json.dumps({"confidence": result.confidence, "hits": hits}))
        return
    if not result.hits:
        typer.echo(f"no passages for tenant {tenant!r}: run `casestream kb ingest` first")
        raise typer.Exit(1)
    typer.echo(f"confidence {result.confidence:.2f} that the top hit answers: {query!r}")
    typer.echo(f"{'#':>2} {'article':<38} {'passage':<44} {'vector':>6} {'bm25':>6} {'fused':>6}")
    for n, h in enumerate(result.hits, 1):
        typer.echo(
            f"{n:>2} {h.article_id:<38} {h.passage_id:<44} {h.vector:6.3f} {h.bm25:6.2f}"
            f" {h.fused:6.3f}"
        )
        typer.echo(f"   {h.title} / {h.heading}")


@kb_app.command("eval")
def eval_cmd(
    queries: Annotated[Path | None, typer.Option(help="Labelled queries (YAML).")] = None,
    tenant: Tenant = DEFAULT_TENANT,
    k: Annotated[int, typer.Option("-k", help="Hits per query.")] = 5,
    store: Store = DEFAULT_STORE,
    pinecone_host: PineconeHost = None,
    pinecone_api_key: PineconeKey = None,
    variant: Variant = "int8",
    refit: Annotated[
        bool, typer.Option("--fit", help="Refit the calibration and save it (kb/eval).")
    ] = False,
    show_misses: Annotated[bool, typer.Option(help="List queries missed at rank 1.")] = False,
) -> None:
    """hit@1, hit@3, MRR and calibration error (cross-validated) on the labelled queries."""
    from kb.calibration import DEFAULT_PATH
    from kb.evaluate import QUERIES_PATH, fit_calibration, load_queries, metrics, run
    from kb.retrieve import Retriever

    config = _config(store, pinecone_host, pinecone_api_key, variant)
    retriever = Retriever(build_embedder(config), build_index(config), build_store(config))
    labelled = load_queries(queries or QUERIES_PATH)
    outcomes = run(retriever, labelled, tenant, k)
    if not any(o.retrieval.hits for o in outcomes):
        typer.echo(f"no passages for tenant {tenant!r}: run `casestream kb ingest` first", err=True)
        raise typer.Exit(1)
    if refit:
        calibration = fit_calibration(outcomes)
        calibration.save(DEFAULT_PATH)
        typer.echo(
            f"calibration fitted on {calibration.fitted_on} queries -> {DEFAULT_PATH}", err=True
        )
        retriever.calibration = calibration
        outcomes = run(retriever, labelled, tenant, k)
    if show_misses:
        for o in outcomes:
            if o.query.answerable and o.rank != 1:
                top = o.retrieval.top.article_id if o.retrieval.top else "-"
                typer.echo(f"miss (rank {o.rank}) {o.query.text!r} -> {top}", err=True)
    typer.echo(json.dumps(metrics(outcomes)))

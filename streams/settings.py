"""Typed settings for every deployable (environment prefix ``CASESTREAM_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All knobs in one place; read from the environment, never at import time."""

    model_config = SettingsConfigDict(env_prefix="CASESTREAM_", env_file=None, extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field("casestream", description="Prefix of every topic name.")
    partitions: int = Field(4, ge=1, description="Partitions of every conversation topic.")
    app_id: str = Field("casestream-agent", description="Faust app id (consumer group).")
    schema_registry_url: str | None = Field(
        None, description="Confluent-compatible registry URL; unset = in-process registry."
    )
    model: str = Field(
        "local,baseline",
        description=(
            "Model adapters, first choice first: triton, local, baseline. Several = a"
            " fallback chain with a timeout and circuit breaker per link."
        ),
    )
    model_variant: str = Field("int8", description="Enrich model variant: int8 or fp32.")
    model_max_batch: int = Field(32, ge=1, description="Texts per inference run.")
    model_threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = auto.")
    model_timeout_s: float = Field(2.0, gt=0, description="Timeout of each non-final link.")
    model_breaker_failures: int = Field(3, ge=1, description="Failures that open a circuit.")
    model_breaker_reset_s: float = Field(30.0, gt=0, description="Open circuit's cool-down.")
    triton_url: str = Field("127.0.0.1:18001", description="Triton gRPC address.")
    triton_model: str = Field("casestream_enrich", description="Triton model name.")
    worker_agents: str = Field(
        "enrich,decide,act",
        description="Agents this worker runs: enrich (model nodes), decide, act (workflows).",
    )
    commit_interval_s: float = Field(0.5, gt=0, description="Consumer offset commit interval.")
    worker_instance_id: str | None = Field(
        None,
        description=(
            "Static consumer-group membership (group.instance.id), unique per worker and"
            " stable across its restarts (e.g. the pod name): a restarted worker takes its"
            " partitions back at once instead of waiting for its old session to expire."
            " Unset = dynamic membership."
        ),
    )
    act_read_back: bool = Field(
        True,
        description=(
            "The act stage reads its ledger of performed actions back from the log for a"
            " request that can be a redelivery (read below the end its partition had when"
            " first seen after a start or a rebalance), so an action redelivered after a"
            " crash is not performed twice. Off: in-memory ledger, at least once."
        ),
    )
    producer_linger_ms: int = Field(10, ge=0, description="Producer linger for output batching.")
    batch_max: int = Field(256, ge=1, description="Most records an agent takes at once.")
    batch_within_s: float = Field(
        0.02, gt=0, description="Longest an agent waits to fill a batch (latency cost)."
    )
    event_loop: str = Field("uvloop", description="Worker event loop: uvloop or asyncio.")
    worker_metrics_port: int = Field(9464, description="Prometheus port of the worker; 0 = off.")
    http_host: str = Field("127.0.0.1", description="Bind address of the web-chat connector.")
    http_port: int = Field(8080, description="Port of the web-chat connector.")
    api_keys: dict[str, str] = Field(
        default_factory=lambda: {"demo-key": "demo"},
        description='API key -> tenant id, as JSON: {"key": "tenant"}.',
    )
    max_message_chars: int = Field(
        10_000, ge=1, description="Longer messages are truncated to this and flagged."
    )
    redis_url: str = Field(
        "redis://127.0.0.1:16379/0", description="Redis for the session-state projection."
    )
    session_ttl_s: int = Field(7 * 24 * 3600, description="TTL of closed conversations' state.")
    analytics_path: Path = Field(
        Path(".data/analytics"), description="chdb data path of the analytics projection."
    )
    clickhouse_url: str | None = Field(
        None, description="ClickHouse server (http://user:pw@host:8123); unset = chdb."
    )
    crm_sqlite_path: Path = Field(
        Path(".data/crm.sqlite"), description="Local case store (eventsourcing on SQLite)."
    )
    crm_url: str | None = Field(None, description="Salesforce login URL; unset = local store.")
    crm_username: str | None = Field(None, description="Salesforce user.")
    crm_password: str | None = Field(None, description="Salesforce password.")
    crm_token: str | None = Field(None, description="Salesforce security token.")
    data_dir: Path = Field(Path(".data"), description="Local state (archives, stores).")
    accounts_path: Path | None = Field(
        None,
        description=(
            "Accounts, plans and invoices seeding the in-memory workflow adapters;"
            " unset = the packaged agent/workflows/sample_accounts.yaml."
        ),
    )
    reset_token_store: str = Field(
        "memory://", description="Reset tokens: memory:// or sqlite:///path/to/tokens.db."
    )
    smtp_host: str | None = Field(
        None, description="SMTP relay for reset emails; unset = .eml files under data_dir/mail."
    )
    smtp_port: int = Field(25, description="SMTP relay port.")
    kb_store: Path = Field(Path(".data/kb"), description="Knowledge-base index and passages.")
    kb_articles: Path | None = Field(
        None,
        description=(
            "Articles ingested for a tenant whose knowledge base is empty on first use;"
            " unset = the packaged kb/articles."
        ),
    )
    llm_base_url: str | None = Field(None, description="OpenAI-compatible LLM; unset = none.")
    llm_model: str | None = Field(None, description="Model name of the primary LLM.")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]

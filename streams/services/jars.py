"""What the Kafka broker runs on: the machine's ``java`` and the jars fetched by Maven."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from streams.services.common import KAFKA_POM, REPO_ROOT, ServiceError, kafka_jars_dir, say
from streams.services.process import file_lock

_JARS_MARKER = ".complete.json"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Jars every broker needs; used to judge whether a jar directory is complete.
_REQUIRED_JAR_PREFIXES = ("kafka_2.13-", "kafka-server-", "kafka-clients-", "log4j-core-")


def java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if not found:
        raise ServiceError(
            "java not found on PATH: install a JDK 17 (apt-get install -y openjdk-17-jre-headless)"
        )
    return found


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _jars_complete(lib: Path, digest: str) -> bool:
    try:
        marker = json.loads((lib / _JARS_MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("pom_sha256") != digest:
        return False
    jars = marker.get("jars")
    if not isinstance(jars, list) or not jars:
        return False
    return all(isinstance(name, str) and (lib / name).is_file() for name in jars)


def ensure_kafka_jars(root: Path = REPO_ROOT) -> Path:
    """Make sure ``.cache/kafka/lib`` holds every runtime jar of ``ops/kafka/pom.xml``.

    Runs ``mvn dependency:copy-dependencies`` only when the directory is missing, incomplete or
    was filled from a different pom (a marker file records the pom's hash and the jar list).
    Maven writes into a scratch directory that replaces the old one only on success, so jars
    of two Kafka versions never mix. Returns the jar directory.
    """
    root = Path(root)
    pom = root / KAFKA_POM
    lib = kafka_jars_dir(root)
    if not pom.is_file():
        raise ServiceError(f"{pom} not found")
    digest = _pom_digest(pom)
    if _jars_complete(lib, digest):
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise ServiceError("mvn not found on PATH: install Maven (apt-get install -y maven)")
    with file_lock(lib.parent / ".install.lock"):
        if _jars_complete(lib, digest):
            return lib
        scratch = lib.parent / f".lib.tmp-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        say("kafka", f"fetching Kafka jars with Maven into {lib} (missing or out of date) ...")
        started = time.monotonic()
        cmd = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={scratch}",
            "-DincludeScope=runtime",
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ServiceError(f"mvn did not finish within {exc.timeout:.0f}s") from exc
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            output = _ANSI.sub("", result.stdout + "\n" + result.stderr).strip().splitlines()
            tail = "\n".join(output[-40:])
            raise ServiceError(
                f"mvn failed with exit code {result.returncode}: {' '.join(cmd)}\n{tail}"
            )
        jars = sorted(p.name for p in scratch.glob("*.jar"))
        missing = [p for p in _REQUIRED_JAR_PREFIXES if not any(j.startswith(p) for j in jars)]
        if missing:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ServiceError(f"mvn succeeded but no jar starting with {missing} was copied")
        marker = {"pom_sha256": digest, "jars": jars}
        (scratch / _JARS_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        shutil.rmtree(lib, ignore_errors=True)
        scratch.rename(lib)
        elapsed = time.monotonic() - started
        say("kafka", f"{len(jars)} jars ready in {elapsed:.1f}s")
    return lib

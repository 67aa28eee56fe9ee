"""The jars of an Apache Kafka broker, fetched from Maven Central with mvn.

The ``kafka_2.13`` pom carries no SLF4J binding (the release tarball adds
one outside the published pom), so the pom below adds log4j2's binding
and core; without them the broker runs silently and never prints the
"Kafka Server started" line :class:`mailyard.kafka_local.LocalKafka` waits
for.  A marker file records which pom filled ``libs/``, so a second call
reuses the jars and a changed pom fetches them again.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

from mailyard.errors import KafkaSetupError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.2"
LOG4J_VERSION = "2.24.3"
DEFAULT_CACHE_DIR = Path(".cache/kafka")
MVN_TIMEOUT_S = 600.0

POM_TEMPLATE = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.mailyard</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def pom_text() -> str:
    return POM_TEMPLATE.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION)


def require_tool(name: str, purpose: str) -> str:
    """Return the path of ``name`` on PATH, or explain what to install."""
    path = shutil.which(name)
    if path is None:
        raise KafkaSetupError(
            f"`{name}` is not on PATH; it is needed to {purpose}. Install it "
            "(Debian: apt-get install openjdk-17-jre-headless maven) and retry."
        )
    return path


def ensure_jars(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Return a directory holding every jar the broker needs, fetching once.

    Concurrent callers (two test sessions) serialize on a lock file, and
    mvn fills a scratch directory that replaces ``libs/`` only on success,
    so a failed or interrupted fetch never leaves a half-filled classpath.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    libs = cache_dir / "libs"
    marker = libs / ".complete"
    digest = hashlib.sha256(pom_text().encode()).hexdigest()

    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().strip() == digest:
            return libs

        scratch = cache_dir / "libs.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        _run_mvn(cache_dir, scratch)

        shutil.rmtree(libs, ignore_errors=True)
        scratch.rename(libs)
        marker.write_text(digest + "\n")
    logger.info("kafka jars ready", extra={"libs": str(libs)})
    return libs


def _run_mvn(cache_dir: Path, output_dir: Path) -> None:
    mvn = require_tool("mvn", "fetch the Kafka broker jars from Maven Central")
    require_tool("java", "run the Kafka broker")
    (cache_dir / "pom.xml").write_text(pom_text())
    log_path = cache_dir / "mvn.log"
    argv = [
        mvn, "-B", "-q", "dependency:copy-dependencies",
        f"-DoutputDirectory={output_dir.resolve()}",
    ]  # fmt: skip

    logger.info("fetching kafka %s jars with mvn", KAFKA_VERSION)
    with open(log_path, "w") as log:
        try:
            done = subprocess.run(
                argv, cwd=cache_dir, stdout=log, stderr=subprocess.STDOUT,
                timeout=MVN_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise KafkaSetupError(
                f"mvn did not finish fetching the Kafka jars in {MVN_TIMEOUT_S:.0f}"
                f" s; see {log_path}."
            ) from None

    jars = list(output_dir.glob("kafka_2.13-*.jar")) if output_dir.exists() else []
    if done.returncode != 0 or not jars:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise KafkaSetupError(
            f"mvn could not fetch the Kafka {KAFKA_VERSION} jars (exit code "
            f"{done.returncode}); check that Maven Central is reachable. "
            f"Log {log_path} ends with:\n{tail}"
        )

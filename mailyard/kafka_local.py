"""A real single-node Apache Kafka broker (KRaft), run from Maven Central jars.

One JVM is both broker and controller, listening on 127.0.0.1 only.  Every
file it owns lives under ``data_dir``: the generated ``server.properties``
and ``log4j2.properties``, the persisted ``cluster.id``, ``broker.pid``,
``broker.log`` (the JVM's output) and ``kafka-data/`` (the topic logs),
so starting again on the same directory keeps every record.

The broker runs in its own session, so it outlives the process that started
it: ``python -m mailyard.kafka_local start`` returns and a later ``stop``
finds the broker through its pid file.
"""

from __future__ import annotations

import base64
import errno
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

from mailyard.admin import wait_for_broker
from mailyard.errors import BrokerUnavailable, KafkaSetupError
from mailyard.kafka_jars import DEFAULT_CACHE_DIR, ensure_jars, require_tool

__all__ = ["LocalKafka", "ensure_jars", "free_port_pair"]

logger = logging.getLogger(__name__)

READY_LINE = "Kafka Server started"
JVM_OPTS = (
    "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)  # fmt: skip

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""

# Console only (the JVM's output is broker.log); KafkaRaftServer stays at
# INFO because its "Kafka Server started" line is the readiness signal.
LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = INFO
"""


class LocalKafka:
    """Start, find and stop one local broker whose state lives in ``data_dir``.

    Leaving a ``with`` block stops the broker only if this object launched
    it; :meth:`stop` stops it either way.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 19092,
        controller_port: int = 19093,
        *,
        cache_dir: Path = DEFAULT_CACHE_DIR,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.controller_port = controller_port
        self.cache_dir = cache_dir
        self.log_path = self.data_dir / "broker.log"
        self.pid_path = self.data_dir / "broker.pid"
        self.log_dir = self.data_dir / "kafka-data"
        self._config_path = self.data_dir / "server.properties"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The pid of this directory's running broker, if there is one."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_our_broker(pid, self._config_path) else None

    @property
    def is_running(self) -> bool:
        return self.pid is not None

    def start(self, timeout: float = 90.0) -> LocalKafka:
        """Start the broker (or adopt the one already running here) and wait."""
        if self.pid is not None:
            return self._adopt(timeout)

        self.pid_path.unlink(missing_ok=True)
        for port in (self.port, self.controller_port):
            _ensure_port_free(port)
        libs = ensure_jars(self.cache_dir)
        java = require_tool("java", "run the Kafka broker")
        self._write_configs()
        self._format_storage(java, libs)

        started = time.monotonic()
        self._launch(java, libs)
        self._wait_ready(timeout)
        logger.info(
            "kafka broker ready in %.1f s on %s", time.monotonic() - started,
            self.bootstrap, extra={"pid": self.pid, "data_dir": str(self.data_dir)},
        )  # fmt: skip
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the broker, wait for its clean shutdown, SIGKILL if late."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                logger.warning(
                    "kafka broker ignored SIGTERM, killing", extra={"pid": pid}
                )
                os.kill(pid, signal.SIGKILL)
                self._wait_exit(pid, 10.0)
        self.pid_path.unlink(missing_ok=True)
        self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self.stop()

    def _adopt(self, timeout: float) -> LocalKafka:
        try:
            wait_for_broker(self.bootstrap, timeout)
        except BrokerUnavailable:
            raise KafkaSetupError(
                f"A broker started earlier from {self.data_dir} is running (pid "
                f"{self.pid}) but does not answer on {self.bootstrap}; it may use "
                "another port. Stop it with `python -m mailyard.kafka_local stop "
                f"--data-dir {self.data_dir}` and start again."
            ) from None
        logger.info("reusing running kafka broker", extra={"pid": self.pid})
        return self

    def _write_configs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._config_path.write_text(
            SERVER_PROPERTIES.format(
                port=self.port,
                controller_port=self.controller_port,
                log_dir=self.log_dir,
            )
        )
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)

    def _java_argv(self, java: str, libs: Path, main: str) -> list[str]:
        log4j = self.data_dir / "log4j2.properties"
        return [
            java, *JVM_OPTS, f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-cp", f"{libs.resolve()}/*", main,
        ]  # fmt: skip

    def _format_storage(self, java: str, libs: Path) -> None:
        # Formatting writes meta.properties with the cluster id; once it is
        # there the log directory is ours and must never be formatted again.
        if (self.log_dir / "meta.properties").exists():
            return

        argv = self._java_argv(java, libs, "kafka.tools.StorageTool") + [
            "format", f"--cluster-id={self._cluster_id()}",
            "--config", str(self._config_path), "--ignore-formatted",
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KafkaSetupError(
                f"Formatting Kafka storage in {self.log_dir} failed (exit code "
                f"{done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}"
            )

    def _cluster_id(self) -> str:
        path = self.data_dir / "cluster.id"
        if path.exists():
            return path.read_text().strip()

        # Kafka's own ids are 16 random bytes, base64url without padding; it
        # redraws ids starting with "-", which argument parsers read as flags.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            raw = base64.urlsafe_b64encode(uuid.uuid4().bytes)
            cluster_id = raw.rstrip(b"=").decode()
        path.write_text(cluster_id + "\n")
        return cluster_id

    def _launch(self, java: str, libs: Path) -> None:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = self._java_argv(java, libs, "kafka.Kafka") + [str(self._config_path)]
        with open(self.log_path, "ab") as log:
            # Log4j's last shutdown line has no newline; start on a fresh one.
            log.write(f"\n--- mailyard: starting kafka on {self.bootstrap}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                argv, cwd=self.data_dir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.pid_path.write_text(f"{self._process.pid}\n")

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while not self._log_says_started():
            if self._process.poll() is not None:
                self.pid_path.unlink(missing_ok=True)
                raise KafkaSetupError(
                    f"The Kafka broker exited with code {self._process.returncode}"
                    f" before it was ready. {self.log_path} ends with:\n"
                    f"{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise KafkaSetupError(
                    f"The Kafka broker did not log {READY_LINE!r} within "
                    f"{timeout:.0f} s. {self.log_path} ends with:\n{self._log_tail()}"
                )
            time.sleep(0.2)

        wait_for_broker(self.bootstrap, max(deadline - time.monotonic(), 5.0))

    def _log_says_started(self) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return READY_LINE.encode() in log.read()

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.pid == pid:
                if self._process.poll() is not None:
                    return True
            elif not _pid_alive(pid):
                return True
            time.sleep(0.1)
        return False


def free_port_pair(preferred: int) -> tuple[int, int]:
    """``preferred`` and the next port if both are free, else two free ports.

    For tests: several sessions may share one machine, and the fallback keeps
    a second session from failing on the first one's broker.
    """
    if _port_free(preferred) and _port_free(preferred + 1):
        return preferred, preferred + 1
    return _os_port(), _os_port()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Java sets SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            return False
    return True


def _os_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _ensure_port_free(port: int) -> None:
    if not _port_free(port):
        raise KafkaSetupError(
            f"Port {port} on 127.0.0.1 is already in use by another process, "
            "so the local Kafka broker cannot listen there. Stop that process "
            "or choose free ports: set MAILYARD_KAFKA_BOOTSTRAP=127.0.0.1:<port>"
            " (the controller takes the next port), or pass --port and "
            "--controller-port to `python -m mailyard.kafka_local`."
        ) from None


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # A zombie has exited and waits only for its parent to reap it.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_our_broker(pid: int, config_path: Path) -> bool:
    # Pids are reused; only a JVM running kafka.Kafka on our config is ours.
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    ours = b"kafka.Kafka" in argv and str(config_path).encode() in argv
    return ours and _pid_alive(pid)


if __name__ == "__main__":
    from mailyard.kafka_cli import main

    raise SystemExit(main())

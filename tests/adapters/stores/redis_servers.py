"""Real ``redis-server`` processes for the Redis store's tests: each on a free loopback port, in a
temporary directory, persisting nothing, always terminated afterwards."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import attrs
import pytest

SERVICE = "handoff-test"


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail(
            "redis-server is not installed; the Redis store tests need it: "
            "apt-get install redis-server"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command(port: int, *words: str, timeout: float = 5.0) -> str:
    """One command through ``redis-cli`` (installed with redis-server); its reply as text."""
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *words],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout.decode("utf-8", "replace")


def wait_until(what: str, check: object, timeout: float = 10.0) -> None:
    """Poll ``check()`` (a real condition) every 20 ms until it is true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, subprocess.SubprocessError) as exc:
            last = exc
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what} ({last})")


@attrs.define
class RedisProcess:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def redis_process(
    directory: Path, *arguments: str, sentinel: bool = False
) -> Iterator[RedisProcess]:
    """Start one server (or, with a config file among ``arguments``, a sentinel) and wait until it
    answers PING; terminate it on exit, whatever happened."""
    binary = redis_server_binary()
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"redis-{port}.log"
    words: Sequence[str] = (
        [binary, *arguments, "--sentinel", "--port", str(port)]
        if sentinel
        else [binary, "--port", str(port), *arguments]
    )
    words = [
        *words,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(words, stdout=output, stderr=subprocess.STDOUT)
    server = RedisProcess(port=port, process=process, log=log)
    try:

        def answers() -> bool:
            if process.poll() is not None:
                pytest.fail(f"redis-server exited ({process.returncode}): {log.read_text()[-800:]}")
            reply = command(port, "PING", timeout=2)
            return reply.strip() == "PONG" or "NOAUTH" in reply  # up, with a password

        wait_until(f"redis-server on port {port} to answer PING", answers)
        yield server
    finally:
        server.stop()


@attrs.define
class SentinelGroup:
    master: RedisProcess
    replica: RedisProcess
    sentinel: RedisProcess

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.sentinel.port)]

    def master_port(self) -> int:
        """The master's port as the sentinel names it now."""
        reply = command(self.sentinel.port, "SENTINEL", "get-master-addr-by-name", SERVICE)
        lines = reply.split()
        return int(lines[1]) if len(lines) == 2 and lines[1].isdigit() else 0


@contextmanager
def sentinel_group(directory: Path) -> Iterator[SentinelGroup]:
    """A master, its replica (in sync) and one sentinel watching them, quick to fail over."""
    with ExitStack() as stack:
        master = stack.enter_context(redis_process(directory / "master"))
        replica = stack.enter_context(
            redis_process(directory / "replica", "--replicaof", "127.0.0.1", str(master.port))
        )
        config = directory / "sentinel" / "sentinel.conf"
        config.parent.mkdir(parents=True)
        config.write_text(
            f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 400\n"
            f"sentinel failover-timeout {SERVICE} 3000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        sentinel = stack.enter_context(
            redis_process(directory / "sentinel", str(config), sentinel=True)
        )
        group = SentinelGroup(master=master, replica=replica, sentinel=sentinel)
        wait_until(
            "the replica to be in sync",
            lambda: "master_link_status:up" in command(replica.port, "INFO", "replication"),
        )
        wait_until(
            "the sentinel to know the replica",
            lambda: (
                str(replica.port) in command(group.sentinel.port, "SENTINEL", "replicas", SERVICE)
            ),
        )
        yield group

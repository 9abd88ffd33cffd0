"""Sessions: ``nox`` runs tests, lint and the diagram check; ``nox -s bench`` the benchmarks."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "diagrams"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """pytest on asyncio and trio, with branch coverage (handoff_core reported on its own)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "--cov=handoff_core",
        "--cov=handoff_adapters",
        "--cov-branch",
        "--cov-report=term-missing:skip-covered",
        *session.posargs,
    )
    session.run("coverage", "report", "--include=*/handoff_core/*", "--precision=1")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy --strict on src/."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")
    mypy = str(Path(session.bin) / "mypy")
    session.run("bash", "scripts/typecheck", env={"MYPY": mypy}, external=True)


@nox.session(python=PYTHON)
def diagrams(session: nox.Session) -> None:
    """Fail when diagrams/ differs from what the state machine generates."""
    session.install("-e", ".")
    session.run("handoff", "diagrams", "--check")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: printed as ratios against baselines measured in the same run."""
    session.install("-e", ".")
    for script in sorted(Path("benchmarks").glob("*.py")):
        session.log(f"--- {script}")
        session.run("python", str(script), *session.posargs)

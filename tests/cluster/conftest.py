"""The cluster stage's Slurm: one per test session, started before the first test that needs it and stopped,
every daemon by its PID, after the last (also when a test fails or the session is interrupted)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.slurm import ClusterUnavailable, LocalSlurm


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        try:
            cluster.start()
        except ClusterUnavailable as exc:
            pytest.skip(f"no Slurm cluster for the cluster stage: {exc}")
        yield cluster
    finally:
        cluster.stop()

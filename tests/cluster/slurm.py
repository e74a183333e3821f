"""A one-node Slurm cluster for the cluster stage, private to one test session.

Debian's slurm-wlm and munge, bound to 127.0.0.1 on free ports, with a private munge socket and key and
all state, spool, logs and PID files under one temporary folder; no cgroups (processes tracked through
/proc, no task plugin) and no accounting database. The daemons run in the foreground as children of the
test process, so their PIDs are known and each one is stopped by PID, whatever the tests did.

submitit watches its jobs with `sacct`, which needs accounting (slurmdbd and a MySQL server). This
cluster answers `sacct` with a shim instead (shims/sacct, put first on PATH): it reads the jobs from
`scontrol show job`, and MinJobAge keeps finished jobs there for the session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

SHIMS = Path(__file__).parent / "shims"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "scontrol", "scancel", "squeue")
NODE = "xai-node"
PARTITION = "debug"


class ClusterUnavailable(Exception):
    """Slurm or munge missing, or a daemon that would not start: the stage skips, saying why in one line."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _program(name: str) -> str | None:
    """A daemon or client of Slurm or munge (daemons live in /usr/sbin, often not on a user's PATH)."""
    sbin = Path("/usr/sbin", name)
    return shutil.which(name) or (str(sbin) if sbin.exists() else None)


def missing_programs() -> list[str]:
    return [p for p in (*DAEMONS, *CLIENTS) if _program(p) is None]


def _slurm_conf(root: Path, cpus: int, memory_mb: int) -> str:
    return "\n".join([
        "ClusterName=xaitest",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge' / 'munge.socket'}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "ReturnToService=2",
        "MinJobAge=3600",  # finished jobs stay visible to scontrol, which the sacct shim reads
        "KillWait=5",
        "InactiveLimit=0",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "SchedulerParameters=sched_interval=2",
        "SlurmdParameters=config_overrides",
        f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname=localhost CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


class LocalSlurm:
    """Start with `start()`, stop with `stop()` (every daemon by its PID); `env` is what a client needs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list[IO[bytes]] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": f"{SHIMS}{os.pathsep}{os.environ['PATH']}"}

    def start(self, timeout_s: float = 60) -> None:
        missing = missing_programs()
        if missing:
            raise ClusterUnavailable(f"{', '.join(missing)} not found (Debian packages slurm-wlm and munge; "
                                     "`make test-cluster` installs them as root)")
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        munge = self.root / "munge"
        os.chmod(munge, 0o700)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2
        self.conf.write_text(_slurm_conf(self.root, os.cpu_count() or 1, memory_mb))

        self._spawn("munged", [_program("munged"), "--foreground", "--force", f"--socket={munge / 'munge.socket'}",
                               f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}", f"--seed-file={munge / 'seed'}"])
        self._wait_for(lambda: (munge / "munge.socket").exists(), "munged", timeout_s)
        self._spawn("slurmctld", [_program("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait_for(lambda: "UP" in self._run("scontrol", "ping").stdout, "slurmctld", timeout_s)
        self._spawn("slurmd", [_program("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)])
        self._wait_for(self._node_idle, "slurmd", timeout_s)

    def _node_idle(self) -> bool:
        out = self._run("scontrol", "show", "node", NODE).stdout
        return "State=IDLE" in out

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=30)

    def _spawn(self, name: str, command: list[str | None]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)

    def _wait_for(self, ready, name: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise ClusterUnavailable(f"{name} exited with status {proc.returncode}: {self._tail(name)}")
            try:
                if ready():
                    return
            except (OSError, subprocess.SubprocessError):
                pass
            time.sleep(0.5)
        raise ClusterUnavailable(f"{name} not ready after {timeout_s:.0f} s: {self._tail(name)}")

    def _tail(self, name: str) -> str:
        lines: list[str] = []
        for path in (self.root / "log" / f"{name}.out", self.root / "log" / f"{name}.log"):
            if path.is_file():
                lines += [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else "(no log)"

    def stop(self) -> None:
        """Jobs first (their processes are the slurmd's children), then the daemons in reverse order."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self._run("scancel", "--full", "--user", str(os.getuid()))
                time.sleep(1)
            except (OSError, subprocess.SubprocessError):
                pass
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for log in self._logs:
            log.close()

    def squeue(self) -> str:
        return self._run("squeue", "-h", "-o", "%i %T").stdout

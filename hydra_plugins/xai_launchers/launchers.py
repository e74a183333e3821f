"""Submitit launchers that wait for every job of a sweep and record how each one ended.

Hydra's submitit launcher returns the jobs' results in order and stops at the first job that produced none
(killed by the OOM killer, `scancel`, a time limit, a lost node): the command then exits with
`UncompletedJobError`, no sweep summary is written, and the later jobs run on unwatched. These launchers
take the same settings (`hydra/launcher=slurm_cpu`, `slurm_gpu`, `slurm_gpu_node`, `local_jobs`), wait
for every job, and write `scheduler.json` in the sweep directory (state and scheduler job id of each job
that did not finish) for the summary to list them. Interrupted while waiting (Ctrl-C), they record the jobs
still running, which go on: a scheduler's jobs do not depend on the command that submitted them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

log = logging.getLogger("xai")


class _WaitForAll(BaseSubmititLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None and job_overrides
        settings = dict(self.params)
        folder = settings.pop("submitit_folder")
        # the executor's own settings are prefixed with its name, but for those every executor shares
        init = ({f"{self._EXECUTOR}_max_num_timeout": settings.pop("max_num_timeout")}
                if "max_num_timeout" in settings else {})
        executor = submitit.AutoExecutor(folder=folder, cluster=self._EXECUTOR, **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in shared else f"{self._EXECUTOR}_{k}": v for k, v in settings.items()})

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:  # as Hydra's launcher does
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        numbers = [initial_job_idx + i for i in range(len(job_overrides))]
        for number, overrides in zip(numbers, job_overrides):
            log.info("#%d: %s", number, " ".join(filter_overrides(overrides)))
        state = Singleton.get_state()
        n = len(numbers)
        jobs = executor.map_array(self, [list(o) for o in job_overrides], ["hydra.sweep.dir"] * n, numbers,
                                  [f"job_id_for_{i}" for i in numbers], [state] * n)
        log.info("submitted %d %s jobs: %s", n, self._EXECUTOR, ", ".join(str(j.job_id) for j in jobs))
        return self._wait(sweep_dir, jobs, numbers, job_overrides)

    def _wait(self, sweep_dir: Path, jobs: list[Any], numbers: list[int],
              job_overrides: Sequence[Sequence[str]]) -> list[JobReturn]:
        from submitit.core.utils import UncompletedJobError

        # imported here, not with the module: Hydra imports every plugin at each start
        from xai_cli.report.sweep import SUBMITIT_TIMED_OUT, write_scheduler_record

        returns: list[JobReturn] = []
        ends: dict[int, dict[str, Any]] = {}
        try:
            for number, overrides, job in zip(numbers, job_overrides, jobs):
                try:
                    returns.append(job.results()[0])
                except UncompletedJobError as exc:  # FailedJobError too: the job died outside our task
                    # (submitit's time-limit handler firing before our task ran: the scheduler says COMPLETED)
                    state = "TIMEOUT" if SUBMITIT_TIMED_OUT in str(exc) else str(job.state)
                    ends[number] = {"state": state, "scheduler_id": str(job.job_id), "overrides": list(overrides)}
                    log.error("#%d (%s job %s) ended without a result: %s", number, self._EXECUTOR, job.job_id,
                              state)
                    # completed with no value, as a job that failed inside the task returns: the sweep goes on
                    returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=None))
        except KeyboardInterrupt:
            for number, overrides, job in zip(numbers, job_overrides, jobs):
                if number not in ends and not job.done():
                    ends[number] = {"state": "RUNNING", "scheduler_id": str(job.job_id), "overrides": list(overrides)}
            raise
        finally:
            if ends:
                write_scheduler_record(sweep_dir, ends)
        return returns


class SlurmLauncher(_WaitForAll):
    _EXECUTOR = "slurm"


class LocalLauncher(_WaitForAll):
    _EXECUTOR = "local"

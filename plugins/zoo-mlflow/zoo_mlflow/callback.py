"""MlflowCallback: a zoo run as an MLflow run.

- on_fit_start: the resolved config (with what `auto` chose) as params; tags for the model, the
  dataset's fingerprint, zoo's version and the run folder. A resumed zoo run (found by its run folder
  tag) continues the same MLflow run, so its metrics go on from the last step.
- on_epoch_end: every metric of the EpochResult, by step (the epoch).
- on_fit_end: curves.png, confusion_matrix.png, final_metrics.json and config.json as artifacts.
- on_export: the export's model.json and parity.json as artifacts (`zoo export` calls it for the
  callbacks its run trained with).
- on_exception: the MLflow run ends as KILLED (a zoo run keeps its last epoch and can be resumed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN_TAG = "zoo.run_dir"  # the zoo run folder (absolute) an MLflow run records


class MlflowCallback:
    def __init__(self, tracking_uri: str | None = None, experiment: str = "zoo", run_name: str | None = None) -> None:
        import os

        # MLflow retries an unreachable server for minutes by default; a tracker that is down should cost a
        # run seconds (zoo then switches the callback off with a warning). The user's own settings win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        import mlflow

        self.mlflow = mlflow
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.run_dir: Path | None = None
        self.run_id: str | None = None

    # -- zoo's hooks ------------------------------------------------------------------------------------------
    def on_fit_start(self, plan) -> None:
        self.run_dir = Path(plan.output).resolve()
        self.run_id = self._start(plan.resume)
        for key, value in {"zoo.model": plan.model, "zoo.dataset": plan.dataset,
                           "zoo.dataset_fingerprint": plan.data_fingerprint}.items():
            self.client().set_tag(self.run_id, key, value)
        if not plan.resume:  # params are written once (MLflow refuses to change a logged param)
            params = {**plan.config, "auto": plan.auto, "device": plan.device, "precision": plan.precision}
            self.client().log_batch(self.run_id, params=[self._param(k, v) for k, v in params.items()])

    def on_epoch_end(self, result) -> None:
        from mlflow.entities import Metric

        stamp = _now_ms()
        metrics = [Metric(key, float(value), stamp, result.epoch) for key, value in result.metrics().items()
                   if key != "epoch"]
        self.client().log_batch(self.run_id, metrics=metrics)

    def on_fit_end(self, result) -> None:
        for name in ("curves.png", "confusion_matrix.png", "final_metrics.json", "config.json"):
            path = Path(result.run_dir) / name
            if path.is_file():
                self.client().log_artifact(self.run_id, str(path))
        self.client().set_terminated(self.run_id, "FINISHED")

    def on_exception(self, exc: BaseException) -> None:
        if self.run_id is not None:
            self.client().set_terminated(self.run_id, "KILLED")

    def on_export(self, folder: Path, run_dir: Path) -> None:
        """After `zoo export` of a run this callback tracked: its model.json and parity.json."""
        self.run_dir = Path(run_dir).resolve()
        self.run_id = self._find_run()
        if self.run_id is None:
            return
        for name in ("model.json", "parity.json"):
            if (Path(folder) / name).is_file():
                self.client().log_artifact(self.run_id, str(Path(folder) / name), artifact_path="export")

    # -- MLflow ----------------------------------------------------------------------------------------------
    def client(self):
        return self.mlflow.tracking.MlflowClient(tracking_uri=self.tracking_uri)

    def _experiment_id(self) -> str:
        found = self.client().get_experiment_by_name(self.experiment)
        return found.experiment_id if found is not None else self.client().create_experiment(self.experiment)

    def _find_run(self) -> str | None:
        runs = self.client().search_runs([self._experiment_id()], f"tags.`{RUN_TAG}` = '{self.run_dir}'",
                                         max_results=1, order_by=["attributes.start_time DESC"])
        return runs[0].info.run_id if runs else None

    def _start(self, resumed: bool) -> str:
        existing = self._find_run() if resumed else None
        if existing is not None:
            self.client().update_run(existing, status="RUNNING")
            return existing
        import zoo

        tags = {RUN_TAG: str(self.run_dir), "zoo.version": zoo.__version__}
        run = self.client().create_run(self._experiment_id(), run_name=self.run_name or self.run_dir.name, tags=tags)
        return run.info.run_id

    @staticmethod
    def _param(key: str, value: Any):
        from mlflow.entities import Param

        text = value if isinstance(value, str) else json.dumps(value)
        return Param(key, text[:6000])


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)

"""plugins/zoo-mlflow against a real MLflow tracking server started here on 127.0.0.1 (sqlite store,
local artifact folder), read back through MlflowClient."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import zoo

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (make test installs it)")
pytest.importorskip("zoo_mlflow", reason="plugins/zoo-mlflow is not installed (make test installs it)")


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder}/store.db",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the MLflow server did not start: {server.stderr.read()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_run_its_resume_and_its_export_land_in_one_mlflow_run(tracking_server, tmp_path):
    from mlflow.tracking import MlflowClient

    run = tmp_path / "run"
    spec = f"mlflow:tracking_uri={tracking_server},experiment=zoo-test"
    zoo.finetune(model="example_tinynet", data="example_shapes", epochs=2, batch_size=16, max_steps_per_epoch=3,
                 workers=0, quiet=True, output=str(run), callbacks=[spec])
    zoo.finetune(resume=str(run), epochs=3, quiet=True, workers=0)  # the callback comes back from config.json
    zoo.export(run, format="onnx", output=tmp_path / "export")

    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("zoo-test")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, "a resumed zoo run continues the same MLflow run"
    tracked = runs[0]
    assert tracked.info.status == "FINISHED"
    history = client.get_metric_history(tracked.info.run_id, "val_top1")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(m.step, round(m.value, 6)) for m in history] == [(r["epoch"], round(r["val_top1"], 6)) for r in rows]
    params = tracked.data.params
    config = json.loads((run / "config.json").read_text())
    assert params["batch_size"] == json.dumps(config["batch_size"]) and params["augment"] == config["augment"]
    assert "label smoothing" in params["auto"]  # what `auto` chose
    tags = tracked.data.tags
    assert tags["zoo.model"] == "example_tinynet" and tags["zoo.version"] == zoo.__version__
    assert tags["zoo.dataset_fingerprint"] == json.loads((run / "last.json").read_text())["dataset"]["fingerprint"]
    artifacts = {a.path for a in client.list_artifacts(tracked.info.run_id)}
    assert {"curves.png", "confusion_matrix.png", "final_metrics.json", "config.json"} <= artifacts
    exported = {a.path for a in client.list_artifacts(tracked.info.run_id, "export")}
    assert exported == {"export/model.json", "export/parity.json"}

"""Two torchrun "nodes" on loopback (c10d rendezvous, gloo): one node's training process dies (SIGKILL) mid-epoch,
torchrun (--max-restarts) starts the workers of both again, and the run carries on from its last finished
epoch to the weights of a run nobody interrupted.

A whole node lost (its torchrun agent too) and started again does not rejoin on torch 2.14: the fresh agent
counts restart 0 where the survivor counts 1 and the next rendezvous round times out in torch (restart
counts are kept per agent; pytorch/pytorch#135712 describes the same); the survivor then stops with the
one line this test also checks, and `--resume` continues the run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import ROOT

# The guest node's training process kills itself in the middle of epoch 2 (step 13 of 9 a epoch) on its first
# start; a restarted one (TORCHELASTIC_RESTART_COUNT 1) trains on. Steps are counted by a global forward hook
# on DDP's wrapper, which also slows each step a little so that the processes stay in step.
NODE = """
import os, signal, sys, time, torch, zoo

steps = 0

def step_hook(module, args):
    global steps
    if type(module).__name__ == "DistributedDataParallel" and module.training:
        steps += 1
        if os.environ.get("DIE_AT_STEP") == str(steps) and os.environ["TORCHELASTIC_RESTART_COUNT"] == "0":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)

torch.nn.modules.module.register_module_forward_pre_hook(step_hook)
zoo.finetune(model="example_tinynet", data="example_shapes", epochs=4, batch_size=16, workers=0, seed=0,
             output=sys.argv[1])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(launch: list[str], script, run, **extra_env: str) -> subprocess.Popen:
    """A torchrun "node"; its output goes to a file beside the run (a pipe nobody reads would fill and
    block the workers), kept on the Popen as ``log``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra_env}
    log = Path(run).parent / f"node-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        node = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *launch, str(script), str(run)],
                                stdout=out, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)  # its own process group: the node is killed whole
    node.log = log
    return node


def _kill_node(node: subprocess.Popen) -> None:
    """SIGKILL to the torchrun agent and every process under it (its workers run in sessions of their own)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    doomed, queue = [], [node.pid]
    while queue:
        pid = queue.pop()
        doomed.append(pid)
        queue.extend(parents.get(pid, []))
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.wait()


def _finish(node: subprocess.Popen) -> str:
    try:
        node.wait(timeout=400)
    except subprocess.TimeoutExpired:
        _kill_node(node)
        pytest.fail(f"a node did not finish:\n{node.log.read_text()[-3000:]}")
    out = node.log.read_text()
    assert node.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_a_lost_node_comes_back_and_the_run_ends_as_if_nothing_happened(tmp_path):
    script = tmp_path / "node.py"
    script.write_text(NODE)
    run = tmp_path / "run"
    nodes = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d", "--rdzv-id", "zoo-elastic",
             "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--max-restarts", "3"]
    host, guest = [*nodes, "--rdzv-conf", "is_host=1"], [*nodes, "--rdzv-conf", "is_host=0"]
    first = _torchrun(host, script, run)  # holds the rendezvous store: the node that fails must not be the one
    time.sleep(2)
    second = _torchrun(guest, script, run, DIE_AT_STEP="13")
    try:
        first_out, second_out = _finish(first), _finish(second)
    finally:
        for node in (first, second):
            if node.poll() is None:
                _kill_node(node)
    logs = first_out + second_out
    assert "exitcode: -9" in second_out, second_out[-3000:]  # the guest's process was lost, and restarted
    assert "lost contact with the process at 127.0.0.1:" in first_out, first_out[-3000:]  # the one line
    assert logs.count("continues from its last finished epoch") == 2, logs[-3000:]  # both nodes resumed
    assert logs.count("resuming") == 2 and "at epoch 2 of 4" in logs, logs[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]  # epoch 2 once: the killed attempt left no row

    reference = tmp_path / "reference"  # the same two processes, nobody killed
    _finish(_torchrun(["--nproc_per_node", "2", "--master_port", str(_free_port())], script, reference))
    interrupted, uninterrupted = load_file(run / "last.safetensors"), load_file(reference / "last.safetensors")
    assert interrupted.keys() == uninterrupted.keys()
    for key in interrupted:
        torch.testing.assert_close(interrupted[key], uninterrupted[key], rtol=0, atol=1e-6, msg=key)


def test_a_lost_peer_is_one_line_naming_it_and_other_errors_pass_through():
    from zoo.engine.distributed import DistributedContext

    gloo = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer "
                        "[10.0.0.7]:41231. This is typically caused by a remote worker crashing. GLHF!")
    message = str(DistributedContext(2, 1).lost_peer(gloo, "runs/r50"))
    assert message.startswith("lost contact with the process at 10.0.0.7:41231 (rank 1 of 2")
    assert "runs/r50 keeps every finished epoch" in message and "--max-restarts" in message
    assert "\n" not in message and "GLHF" not in message
    assert DistributedContext(2, 1).lost_peer(RuntimeError("CUDA error: device-side assert"), "runs/r50") is None
    assert DistributedContext().lost_peer(gloo, "runs/r50") is None  # one process: no peer to lose


def test_only_a_torchrun_restart_with_a_checkpoint_resumes(tmp_path, monkeypatch):
    from zoo.engine.api import elastic_resume

    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    assert elastic_resume(None, str(run)) is None  # not under torchrun
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert elastic_resume(None, str(run)) is None  # restarted, but nothing finished yet: a fresh start
    (run / "last.safetensors").write_bytes(b"")
    assert elastic_resume(None, str(run)) == str(run)
    assert elastic_resume("runs/other", str(run)) == "runs/other"  # an explicit --resume wins
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert elastic_resume(None, str(run)) is None  # the first start of a torchrun job into an old folder

"""zoo.finetune(): the library call behind `zoo finetune`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.engine.config import TrainConfig
from zoo.engine.trainer import RunResult, fit, resolve_run


def finetune(
    model: str | None = None,
    data: str | None = None,
    config: str | Path | TrainConfig | None = None,
    resume: str | Path | None = None,
    **options: Any,
) -> RunResult:
    """Fine-tune a registered model on a dataset name or path.

        zoo.finetune(model="resnet18", data="hymenoptera", epochs=5, freeze="backbone")

    ``config`` is a TrainConfig or a .toml/.json file; keyword options override it. With
    ``resume`` (a run folder, or "latest") the run continues from its last finished epoch;
    passing ``epochs`` then extends it.
    """
    given = {k: v for k, v in {"model": model, "data": data, **options}.items() if v is not None}
    if resume is not None:
        import json

        run_dir = resolve_run(resume)
        saved = json.loads((run_dir / "config.json").read_text())
        cfg = TrainConfig.from_dict({**saved, **given, "output": str(run_dir)})
        cfg.save(run_dir / "config.json")
        return fit(cfg, resume=run_dir)
    if isinstance(config, TrainConfig):
        cfg = TrainConfig.from_dict({**config.to_dict(), **given})
    elif config is not None:
        cfg = TrainConfig.from_file(config, **given)
    else:
        cfg = TrainConfig.from_dict(given)
    return fit(cfg)

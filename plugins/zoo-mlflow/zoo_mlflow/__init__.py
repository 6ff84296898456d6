"""zoo-mlflow: registers the `mlflow` training callback (zoo finetune --callback mlflow).

The template for a third-party callback: a class with any of zoo.Callback's hooks, named as a
string so that registering imports neither MLflow nor torch; zoo imports it only for a run that
selects it (`--callback mlflow:tracking_uri=http://127.0.0.1:5000,experiment=food`).
"""

from zoo.plugin import PluginContext


def register(ctx: PluginContext) -> None:
    ctx.add_callback("mlflow", "zoo_mlflow.callback:MlflowCallback")

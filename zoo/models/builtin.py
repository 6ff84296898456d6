"""zoo's own models, registered through the same entry point a third-party plugin uses."""

from __future__ import annotations

from zoo.plugin import PluginContext, WeightsFile

# torchvision publishes ImageNet weights for these exact parameter names; the hex in each file
# name is the start of its SHA-256, which the downloader checks.
_TV_URL = "https://download.pytorch.org/models/"
IMAGENET_WEIGHTS = {
    "resnet18": WeightsFile(_TV_URL + "resnet18-f37072fd.pth", "f37072fd"),
    "resnet34": WeightsFile(_TV_URL + "resnet34-b627a593.pth", "b627a593"),
    "resnet50": WeightsFile(_TV_URL + "resnet50-11ad3fa6.pth", "11ad3fa6"),
    "resnet101": WeightsFile(_TV_URL + "resnet101-cd907fc2.pth", "cd907fc2"),
    "resnet152": WeightsFile(_TV_URL + "resnet152-f82ba261.pth", "f82ba261"),
}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
BUILDER = "zoo.models.resnet:build_resnet"


def register(ctx: PluginContext) -> None:
    ctx.add_namespace("tv", "zoo.models.namespaces:TorchvisionNamespace",
                      description="every torchvision classification model")
    ctx.add_namespace("timm", "zoo.models.namespaces:TimmNamespace", description="every timm model")
    for variant, weights in IMAGENET_WEIGHTS.items():
        ctx.add_model(
            variant,
            BUILDER,
            factory_kwargs={"variant": variant},
            family="resnet",
            description=f"hand-built {variant}, state-dict compatible with torchvision",
            weights=weights,
            # torchvision's own evaluation preset for these weights (V1 for 18/34, V2 above)
            resize_size=256 if variant in ("resnet18", "resnet34") else 232,
        )
    for variant in ("resnet18", "resnet34", "resnet50"):
        ctx.add_model(
            f"{variant}_cifar",
            BUILDER,
            factory_kwargs={"variant": variant, "small_input": True},
            family="resnet",
            description=f"hand-built {variant} with a 3x3 stride-1 stem and no max-pool, for 32 px images",
            input_size=32,
            resize_size=32,
            mean=CIFAR_MEAN,
            std=CIFAR_STD,
            default_num_classes=10,
        )

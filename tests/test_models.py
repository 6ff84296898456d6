"""Every registered model builds; hand-built ResNets match torchvision; heads and weights load right."""

import pytest
import torch
import torchvision

import zoo
from zoo.errors import WeightsError
from zoo.models.api import replace_head
from zoo.models.weights import read_checkpoint
from zoo.specs import WeightsFile



@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.mark.parametrize("name", zoo.list_models(source="zoo"))
def test_every_zoo_model_builds_and_runs(name):
    info = zoo.model_info(name)
    model = zoo.create_model(name, num_classes=7).eval()
    size = min(info.input_size, 64)
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("variant", ["resnet18", "resnet50"])
def test_hand_built_resnet_is_torchvision_compatible(variant):
    reference = getattr(torchvision.models, variant)(weights=None).eval()
    ours = zoo.create_model(variant, num_classes=1000).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 96, 96)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
    assert list(ours.state_dict()) == list(reference.state_dict())


def test_resnet152_has_torchvision_parameter_names():
    ours = zoo.create_model("resnet152").state_dict()
    theirs = torchvision.models.resnet152(weights=None).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


def test_cifar_variant_keeps_resolution_in_stem():
    model = zoo.create_model("resnet18_cifar", num_classes=10).eval()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("name", ["tv:mobilenet_v3_small", "tv:efficientnet_b0", "tv:vit_b_16", "tv:regnet_y_400mf",
                                  "tv:densenet121", "tv:squeezenet1_0"])
def test_torchvision_models_build_with_new_head(name):
    model = zoo.create_model(name, num_classes=5).eval()
    size = 224 if "vit" in name else 64
    assert model(torch.randn(1, 3, size, size)).shape == (1, 5)
    replace_head(model, 3)
    assert model(torch.randn(1, 3, size, size)).shape == (1, 3)


@pytest.mark.parametrize("name", ["timm:resnet18", "timm:mobilenetv3_small_050", "timm:convnext_atto", "timm:vit_tiny_patch16_224"])
def test_timm_models_build_with_new_head(name):
    model = zoo.create_model(name, num_classes=4).eval()
    size = 224 if "vit" in name else 64
    assert model(torch.randn(1, 3, size, size)).shape == (1, 4)
    replace_head(model, 6)
    assert model(torch.randn(1, 3, size, size)).shape == (1, 6)


def test_weights_from_file_drop_mismatched_head(tmp_path):
    from safetensors.torch import save_file

    source = zoo.create_model("resnet18", num_classes=1000)
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(path))
    model = zoo.create_model("resnet18", num_classes=3, weights=path)
    assert sorted(model.zoo_load_report.dropped) == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    pth = tmp_path / "w.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}, pth)
    model = zoo.create_model("resnet18", num_classes=1000, weights=pth)
    assert model.zoo_load_report.dropped == []
    torch.testing.assert_close(model.fc.weight, source.fc.weight)


@pytest.mark.parametrize("weights", ["", "none"])
def test_empty_weights_mean_random_init(weights):
    # `--weights ""` is how examples/ train a recipe that names DEFAULT where no weights can be had
    torch.manual_seed(0)
    model = zoo.create_model("example_tinynet", num_classes=3, weights=weights)
    torch.manual_seed(0)
    assert torch.equal(model.fc.weight, zoo.create_model("example_tinynet", num_classes=3).fc.weight)
    assert not hasattr(model, "zoo_load_report")


def test_weights_of_another_architecture_are_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "r50.safetensors"
    save_file(zoo.create_model("resnet50", num_classes=10).state_dict(), str(path))
    with pytest.raises(WeightsError, match="do not fit ResNet"):
        zoo.create_model("resnet18", num_classes=10, weights=path)


def test_pickled_code_in_pth_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a module object, not plain tensors
    with pytest.raises(WeightsError, match="weights_only=True"):
        read_checkpoint(path)


def _serve_weights(registry, folder, base_url, sha=None):
    """Serve a resnet18 state dict and point the registry's resnet18 at it (sha None: the real one)."""
    from zoo.hub import file_digest

    state = zoo.create_model("resnet18").state_dict()
    torch.save(state, folder / "resnet18-test.pth")
    sha = file_digest(folder / "resnet18-test.pth")[:8] if sha is None else sha
    info = zoo.model_info("resnet18")
    patched = info.__class__(**{**info.__dict__, "weights": WeightsFile(f"{base_url}/resnet18-test.pth", sha)})
    registry.models.replace("resnet18", patched)
    return state


def test_default_weights_download_from_loopback(loopback_server, fresh_registry):
    from zoo.hub import cache_dir

    folder, base_url = loopback_server
    state = _serve_weights(fresh_registry, folder, base_url)
    model = zoo.create_model("resnet18", num_classes=2, weights="DEFAULT")
    assert sorted(model.zoo_load_report.dropped) == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(model.conv1.weight, state["conv1.weight"])
    assert (cache_dir("weights") / "resnet18-test.pth").is_file()


def test_default_weights_checksum_mismatch_leaves_no_file(loopback_server, fresh_registry):
    from zoo.hub import cache_dir

    folder, base_url = loopback_server
    _serve_weights(fresh_registry, folder, base_url, sha="deadbeef")
    with pytest.raises(WeightsError, match="checksum mismatch"):
        zoo.create_model("resnet18", weights="DEFAULT")
    leftovers = list(cache_dir("weights").glob("*")) if cache_dir("weights").exists() else []
    assert leftovers == []


def test_default_weights_offline_is_one_clear_line(fresh_registry):
    info = zoo.model_info("resnet18")
    offline = info.__class__(**{**info.__dict__, "weights": WeightsFile("http://127.0.0.1:9/resnet18-f37072fd.pth", "f37072fd")})
    fresh_registry.models.replace("resnet18", offline)
    with pytest.raises(WeightsError) as excinfo:
        zoo.create_model("resnet18", weights="DEFAULT")
    message = str(excinfo.value)
    assert "\n" not in message and "resnet18-f37072fd.pth" in message and "put it at" in message


def test_builtin_weight_urls_match_torchvision():
    for variant in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]:
        published = torchvision.models.get_model_weights(variant).DEFAULT.url
        assert zoo.model_info(variant).weights.url == published

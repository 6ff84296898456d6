import pytest

import zoo
from zoo.errors import DuplicateNameError, UnknownNameError
from zoo.registry.core import Registry
from zoo.specs import ModelInfo


def test_builtin_models_are_registered_through_entry_points(fresh_registry):
    names = zoo.list_models(source="zoo")
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet18_cifar"} <= set(names)
    record = next(p for p in fresh_registry.plugins if p.distribution == "zoo" and p.group == "zoo.models")
    assert "resnet152" in record.models


def test_wildcard_listing_and_sources(fresh_registry):
    assert zoo.list_models("resnet1*", source="zoo") == ["resnet101", "resnet152", "resnet18", "resnet18_cifar"]
    tv = zoo.list_models(source="tv")
    assert len(tv) >= 70 and "tv:convnext_tiny" in tv and all(n.startswith("tv:") for n in tv)
    timm_names = zoo.list_models(source="timm")
    assert len(timm_names) > 1000 and "timm:resnet18" in timm_names
    everything = zoo.list_models("resnet18", source="all")
    assert everything == ["resnet18", "tv:resnet18", "timm:resnet18"]


def test_listing_namespaces_builds_no_model(fresh_registry, monkeypatch):
    import timm
    import torchvision.models

    def refuse(*args, **kwargs):
        raise AssertionError("listing must not build a model")

    monkeypatch.setattr(torchvision.models, "get_model", refuse)
    monkeypatch.setattr(timm, "create_model", refuse)
    assert zoo.list_models("vit*", source="all")
    assert zoo.model_info("tv:vit_b_16").input_size == 224
    assert zoo.model_info("timm:convnext_tiny").classifier == "head.fc"


def test_unknown_name_suggests_close_matches(fresh_registry):
    with pytest.raises(UnknownNameError, match=r"did you mean resnet152"):
        zoo.model_info("resnet151")
    with pytest.raises(UnknownNameError, match=r"tv:resnet18"):
        zoo.model_info("tv:resnet_18")
    with pytest.raises(UnknownNameError, match="unknown model namespace"):
        zoo.model_info("hf:bert")


def test_duplicate_registration_names_both_sources():
    registry = Registry(discover_plugins=False)
    registry.add_model(ModelInfo(name="net", factory="x:y", distribution="first-dist"))
    with pytest.raises(DuplicateNameError, match=r"'net' from second-dist is already registered by first-dist"):
        registry.add_model(ModelInfo(name="net", factory="x:y", distribution="second-dist"))


def test_tv_metadata_comes_from_its_weights(fresh_registry):
    info = zoo.model_info("tv:efficientnet_b3")
    assert info.input_size == 300 and info.resize_size == 320
    assert info.interpolation == "bicubic" and info.classifier == "classifier"
    assert info.weights.url.endswith(".pth") and info.weights.sha256

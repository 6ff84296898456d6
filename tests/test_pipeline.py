"""Batches on the device: the cached-batch augmentation, batch assembly and reproducible sampling."""

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.data.batch_augment import BatchAugment
from zoo.data.dataset import ArrayImages
from zoo.data.loader import TransformedImages, make_loader
from zoo.data.pipeline import CachedBatches
from zoo.data.transforms import eval_transform, train_transform
from zoo.specs import Preprocessing

PRE = Preprocessing(input_size=32, resize_size=36)  # ImageNet mean/std, bilinear


def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(PRE.mean).view(1, 3, 1, 1), torch.tensor(PRE.std).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


def _random_images(n: int, side: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_no_augmentation_matches_the_evaluation_transform():
    images = _random_images(4, PRE.resize_size)
    on_device = BatchAugment(PRE, "none")(images)
    reference = torch.stack([eval_transform(PRE)(image) for image in images])
    torch.testing.assert_close(on_device, reference, rtol=0, atol=1e-6)


def test_cifar_preset_is_a_whole_pixel_shift_with_optional_flip():
    pre = replace(PRE, resize_size=32)
    images = _random_images(6, 32)
    torch.manual_seed(3)
    out = BatchAugment(pre, "cifar")(images)
    padded = torch.nn.functional.pad(images.float(), (4, 4, 4, 4), mode="replicate")
    for k in range(len(images)):
        candidates = [
            view for dy in range(9) for dx in range(9) for view in
            (padded[k:k + 1, :, dy:dy + 32, dx:dx + 32], padded[k:k + 1, :, dy:dy + 32, dx:dx + 32].flip(-1))
        ]
        errors = [(_normalise(c) - out[k:k + 1]).abs().max().item() for c in candidates]
        assert min(errors) < 1e-4, f"image {k} is not a shifted copy (closest {min(errors)})"


def test_light_preset_draws_per_image_samples_inside_and_repeats_with_the_seed():
    flat = torch.full((1, 3, 36, 36), 120, dtype=torch.uint8)
    flat_out = BatchAugment(PRE, "light")(flat.expand(8, -1, -1, -1))
    torch.testing.assert_close(flat_out, _normalise(flat)[..., :32, :32].expand(8, -1, -1, -1), rtol=0, atol=1e-5)  # no border

    images = _random_images(1, 36).expand(8, -1, -1, -1)
    torch.manual_seed(0)
    first = BatchAugment(PRE, "light")(images)
    torch.manual_seed(0)
    again = BatchAugment(PRE, "light")(images)
    assert torch.equal(first, again)
    distinct = {tuple(view.flatten()[:64].tolist()) for view in first}
    assert len(distinct) == 8, "every image in the batch gets its own crop"


def test_strong_preset_rotates_flips_and_jitters_each_image():
    images = _random_images(16, 36, seed=1)
    torch.manual_seed(0)
    out = BatchAugment(PRE, "strong")(images)
    assert out.shape == (16, 3, 32, 32) and torch.isfinite(out).all()
    pixels = out * torch.tensor(PRE.std).view(1, 3, 1, 1) + torch.tensor(PRE.mean).view(1, 3, 1, 1)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    black_corner = (pixels[:, :, 0, 0].abs().sum(1) < 1e-5).sum().item()
    assert 0 < black_corner < 16, "rotation by up to 45 degrees leaves black corners on some images only"


def test_cached_batches_keep_each_label_with_its_image():
    labels = np.arange(50) % 5
    images = np.repeat(labels[:, None, None, None] * 40, 8 * 8 * 3, axis=1).reshape(50, 8, 8, 3).astype(np.uint8)
    batches = CachedBatches.from_images(ArrayImages(images, labels), None, 16, torch.device("cpu"), True,
                                        generator=torch.Generator().manual_seed(0), drop_last=True)
    seen = []
    assert len(batches) == 3
    for x, y in batches:
        assert x.shape == (16, 3, 8, 8) and torch.equal(x[:, 0, 0, 0], (y * 40).to(torch.uint8))
        seen.append(y)
    assert len(torch.cat(seen)) == 48


def test_augmentation_is_the_same_with_any_number_of_workers():
    rng = np.random.default_rng(0)
    source = ArrayImages(rng.integers(0, 256, (24, 36, 36, 3), dtype=np.uint8), np.arange(24) % 3)
    dataset = TransformedImages(source, train_transform(PRE, "light"))

    def epoch(workers: int) -> list[torch.Tensor]:
        loader = make_loader(dataset, 8, True, workers, torch.device("cpu"), torch.Generator().manual_seed(5))
        return [x for x, _ in loader]

    for a, b in zip(epoch(0), epoch(2)):
        assert torch.equal(a, b)
    state = torch.get_rng_state()
    dataset[(0, 123)]
    assert torch.equal(torch.get_rng_state(), state)  # training's own random draws are left alone


@pytest.mark.parametrize("preset", ["light", "cifar", "strong"])
def test_batch_augment_refuses_float_input(preset):
    with pytest.raises(TypeError, match="uint8"):
        BatchAugment(PRE, preset)(torch.zeros(2, 3, 36, 36))


def test_disk_cache_matches_memory_and_is_reused_until_files_change(class_folders, tmp_path, monkeypatch):
    import os

    import zoo
    import zoo.data.decoded_cache as decoded_cache
    from zoo.data.decoded_cache import CacheSpec, decode_once, decode_once_to_disk

    source = zoo.create_dataset(str(class_folders)).train
    cache = tmp_path / "cache"
    spec = CacheSpec(20, 20)
    in_memory = decode_once(source, spec)
    on_disk = decode_once_to_disk(source, spec, folder=cache)
    assert isinstance(on_disk.images, np.memmap) and np.array_equal(on_disk.images, in_memory.images)
    assert [p.suffix for p in cache.iterdir()] == [".npy"]  # no temp file left behind

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(decoded_cache, "_fast_loader", no_decoding)
    assert np.array_equal(decode_once_to_disk(source, spec, folder=cache).images, in_memory.images)
    monkeypatch.undo()
    os.utime(source.paths[0], ns=(1, 1))  # a changed file means another cache (for the dataset read after it:
    source = zoo.create_dataset(str(class_folders)).train  # a dataset's file identities are taken when it is read)
    decode_once_to_disk(source, spec, folder=cache)
    assert len(list(cache.glob("*.npy"))) == 2


def test_training_from_the_disk_cache(class_folders, tmp_path):
    import json

    import zoo

    run = tmp_path / "run"
    result = zoo.finetune(model="example_tinynet", data=str(class_folders), epochs=4, lr=3e-3, batch_size=8,
                          cache="disk", output=str(run), quiet=True, workers=0)
    meta = json.loads((run / "best.json").read_text())
    assert meta["training_inputs"]["pipeline"] == "workers"  # a disk cache is read per image, not held whole
    assert list((Path(os.environ["ZOO_CACHE"]) / "decoded").glob("*.npy"))
    assert result.best_top1 >= 0.8  # three colours: trivially separable


@pytest.mark.parametrize("size", [64, 224])
def test_evaluation_cache_gives_exactly_the_evaluation_transform(tmp_path, size):
    """Validation during training sees the pixels predict and the exports see, to the last bit."""
    from PIL import Image

    from zoo.data.dataset import FileImages
    from zoo.data.decoded_cache import CacheSpec, decode_once
    from zoo.data.decode import decode_rgb
    from zoo.data.transforms import scale_and_normalise

    paths = []
    for i, (w, h) in enumerate([(97, 61), (300, 451), (73, 73), (1000, 999), (65, 300)]):  # odd sizes: rounding
        image = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
        paths.append(str(tmp_path / f"{i}.jpg"))
        Image.fromarray(image).save(paths[-1], quality=90)
    pre = Preprocessing(input_size=size, resize_size=int(size / 0.875))
    cached = decode_once(FileImages(paths, np.zeros(len(paths), dtype=int)), CacheSpec.for_evaluation(pre))
    assert cached.images.shape == (len(paths), size, size, 3)
    for i, path in enumerate(paths):
        from_cache = scale_and_normalise(pre)(torch.from_numpy(cached.images[i]).permute(2, 0, 1))
        assert torch.equal(from_cache, eval_transform(pre)(decode_rgb(path))), path

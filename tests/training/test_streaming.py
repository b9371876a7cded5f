"""The metric and simclr tasks on images that stay on disk (FileImages) train on what the same
images give in memory, and never read the whole set at once."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from simlearn.config.metric import (
    AugmentConfig,
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    SamplerConfig,
)
from simlearn.data.image_dataset import ImageDataset
from simlearn.data.image_files import FileImages
from simlearn.models.embedder import embed_labelled
from simlearn.training.metric import MetricTask
from simlearn.training.simclr import SimCLRTask

N, SIZE, CLASSES = 160, 16, 4


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The same 160 PNG images (4 classes) as FileImages and as the array they decode to."""
    root = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    labels = np.arange(N) % CLASSES
    paths = []
    for i, y in enumerate(labels):
        pixels = rng.integers(0, 256, (SIZE + 4, SIZE, 3), dtype=np.uint8)  # oblong: a crop
        pixels[..., y % 3] //= 2  # a class signal
        path = f"images/{y:04d}/{i}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / path)
        paths.append(path)
    splits = np.array(["train", "train", "val", "test"])[(np.arange(N) // CLASSES) % 4]
    files = FileImages(root, paths, image_size=SIZE, resize="crop", channels=3, workers=2)
    array = np.asarray(files)

    def dataset(images):
        return ImageDataset(
            images=images,
            labels=labels.astype(np.int64),
            splits=splits,
            ids=np.array([str(i) for i in range(N)]),
            class_names=[str(c) for c in range(CLASSES)],
            manifest=pd.DataFrame({"path": paths}),
        )

    return dataset(files), dataset(array)


@pytest.fixture
def reads(monkeypatch):
    """The number of rows of every FileImages read."""
    seen: list[int] = []
    original = FileImages.read

    def read(self, rows):
        seen.append(len(rows))
        return original(self, rows)

    monkeypatch.setattr(FileImages, "read", read)
    return seen


def _cfg(task: str, **kwargs) -> ExperimentConfig:
    # width 8: a width-4 convnet makes CPU training nondeterministic on this torch (2.14, two
    # threads), and aborts it with one thread (heap corruption), whatever the images' source
    return ExperimentConfig(
        task=task,
        dataset="d",
        model=ModelConfig(name="convnet", embedding_dim=8, width=8, **kwargs.pop("model", {})),
        **kwargs,
    )


def test_metric_task_streams_what_memory_holds(datasets, reads):
    files, array = datasets
    cfg = _cfg("metric", sampler=SamplerConfig(classes_per_batch=4, samples_per_class=4))
    on_disk, in_memory = MetricTask(cfg, files), MetricTask(cfg, array)
    # channel statistics: every training row here (fewer than the sample), chunk by chunk
    np.testing.assert_allclose(on_disk.spec["input_mean"], in_memory.spec["input_mean"], 1e-12)
    np.testing.assert_allclose(on_disk.spec["input_std"], in_memory.spec["input_std"], 1e-10)
    a, b = on_disk.model.state_dict(), in_memory.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k not in ("mean", "std"))
    batch = next(iter(on_disk.batches(0)))
    np.testing.assert_array_equal(batch, next(iter(in_memory.batches(0))))
    cpu = torch.device("cpu")
    assert torch.equal(on_disk._images(batch, cpu), in_memory._images(batch, cpu))
    in_memory.model.load_state_dict(on_disk.model.state_dict())  # the same statistics
    loss_disk, _ = on_disk.loss(on_disk.model.train(), batch, cpu)
    loss_memory, _ = in_memory.loss(in_memory.model.train(), batch, cpu)
    torch.testing.assert_close(loss_disk, loss_memory, rtol=0, atol=0)
    assert reads and max(reads) <= 64  # never the whole set: a batch, or a statistics chunk
    # what embed writes: the same, read chunk by chunk
    got = embed_labelled(cfg, on_disk.model, files, "cpu")
    want = embed_labelled(cfg, on_disk.model, array, "cpu")
    np.testing.assert_array_equal(got["embeddings"], want["embeddings"])


def test_simclr_task_streams_what_memory_holds(datasets, reads):
    files, array = datasets
    cfg = _cfg(
        "simclr",
        model={"projection_dim": 8},
        loss=LossConfig(name="ntxent", temperature=0.5),
        sampler=SamplerConfig(name="random", batch_size=16),
        augment=AugmentConfig(),
    )
    on_disk, in_memory = SimCLRTask(cfg, files), SimCLRTask(cfg, array)
    rows, seed = next(iter(on_disk.batches(0)))
    cpu = torch.device("cpu")
    for v_disk, v_memory in zip(
        on_disk.views(rows, seed, cpu), in_memory.views(rows, seed, cpu), strict=True
    ):
        assert torch.equal(v_disk, v_memory)
    assert max(reads) <= 64


def test_an_epoch_from_files_trains_as_one_in_memory(datasets, reads, tmp_path):
    """Through the engine, read-ahead included: the same losses, bit for bit, once both start
    from the same channel statistics (the sample's sums and numpy's mean differ in the last
    bits, which Adam's normalised steps would amplify)."""
    from simlearn.config.train import TrainConfig
    from simlearn.engine import fit

    files, array = datasets
    cfg = _cfg(
        "metric",
        sampler=SamplerConfig(classes_per_batch=4, samples_per_class=4),
        train=TrainConfig(epochs=2, device="cpu"),
    )
    on_disk, in_memory = MetricTask(cfg, files), MetricTask(cfg, array)
    in_memory.model.load_state_dict(on_disk.model.state_dict())
    runs = []
    for name, task in (("disk", on_disk), ("memory", in_memory)):
        result = fit(task, cfg.train, seed=0, checkpoint_dir=tmp_path / name, progress=False)
        runs.append([row["loss"] for row in result.history])
    assert runs[0] == runs[1]
    assert max(reads) <= 64

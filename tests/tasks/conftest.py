import pytest

from simlearn.data.image_dataset import load_image_dataset
from simlearn.data.sources import DatasetConfig, build_dataset


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The embedded digits dataset, built once: 70/30 train+val/test, as in params.yaml."""
    out = tmp_path_factory.mktemp("data") / "digits"
    build_dataset("digits", DatasetConfig(source="digits", test_fraction=0.3), out)
    return load_image_dataset(out)

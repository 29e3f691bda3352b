"""IDX loader: round trip, header checks, one-line UserErrors naming the Debian package."""

import gzip
import struct

import numpy as np
import pytest
import torch

from earlyq_sim.errors import UserError
from earlyq_sim.workloads.training import datasets as ds


def _write_split(d, n=5, seed=0, split="test"):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    img_name, lbl_name = ds.SPLITS[split]
    ds.write_idx(d / img_name, images)
    ds.write_idx(d / lbl_name, labels)
    return images, labels


def test_idx_round_trip_and_header_bytes(tmp_path):
    images, labels = _write_split(tmp_path)
    raw = gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz").read()
    # hand-built header: magic 0x00000803 then sizes 5, 28, 28, all big-endian
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28])
    got_i, got_l = ds.load_fmnist_uint8("test", data_dir=tmp_path)
    np.testing.assert_array_equal(got_i, images)
    np.testing.assert_array_equal(got_l, labels)


def test_load_fmnist_range_shape_and_area_mean(tmp_path):
    _write_split(tmp_path, n=3, seed=1)
    x, y = ds.load_fmnist("test", resolution=16, data_dir=tmp_path, with_labels=True)
    assert x.shape == (3, 1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    # resolution 14 divides 28: exact 2x2 area mean
    x14 = ds.load_fmnist("test", resolution=14, data_dir=tmp_path)
    raw = ds.load_fmnist_uint8("test", data_dir=tmp_path)[0].astype(np.float64) / 255
    ref = raw.reshape(3, 14, 2, 14, 2).mean(axis=(2, 4)) * 2 - 1
    np.testing.assert_allclose(x14[:, 0].numpy(), ref, atol=1e-6)


def test_antialiased_resize_keeps_constant_image():
    x = torch.full((1, 1, 28, 28), 0.3)
    np.testing.assert_allclose(ds.resize_images(x, 16).numpy(), 0.3, atol=1e-6)


def test_corrupt_magic_is_user_error(tmp_path):
    _write_split(tmp_path)
    bad = gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz").read()
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(struct.pack(">I", 0x00000801) + bad[4:])
    ds._load_raw.cache_clear()
    with pytest.raises(UserError, match="magic 0x00000801, expected 0x00000803") as exc:
        ds.load_fmnist_uint8("test", data_dir=tmp_path)
    assert "dataset-fashion-mnist" in str(exc.value) and "\n" not in str(exc.value)


def test_truncated_and_non_gzip_files_are_user_errors(tmp_path):
    _write_split(tmp_path)
    raw = gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz").read()
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(raw[:-1])
    ds._load_raw.cache_clear()
    with pytest.raises(UserError, match="payload"):
        ds.load_fmnist_uint8("test", data_dir=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    ds._load_raw.cache_clear()
    with pytest.raises(UserError, match="dataset-fashion-mnist"):
        ds.load_fmnist_uint8("test", data_dir=tmp_path)


def test_missing_dir_and_file_name_the_package(tmp_path):
    with pytest.raises(UserError, match="dataset-fashion-mnist"):
        ds.load_fmnist("train", data_dir=tmp_path / "nope")
    with pytest.raises(UserError, match="dataset-fashion-mnist"):
        ds.load_fmnist("train", data_dir=tmp_path)  # exists but empty


def test_bad_split_and_resolution(tmp_path):
    with pytest.raises(UserError, match="allowed train, test"):
        ds.load_fmnist("val", data_dir=tmp_path)
    with pytest.raises(UserError, match="resolution"):
        ds.load_fmnist("test", resolution=64, data_dir=tmp_path)


def test_uint8_round_trip():
    u = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    np.testing.assert_array_equal(ds.to_uint8(ds.from_uint8(u)), u)


@pytest.mark.skipif(not (ds.DEFAULT_DATA_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian dataset-fashion-mnist not installed")
def test_installed_test_split():
    x, y = ds.load_fmnist("test", with_labels=True)
    assert x.shape == (10000, 1, 16, 16)
    assert sorted(np.bincount(y.numpy()).tolist()) == [1000] * 10

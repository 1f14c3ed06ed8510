import os
import stat

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_genprior._io import decode_mask, encode_mask, read_tiff, write_tiff


@settings(max_examples=40, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 30), st.integers(1, 30))))
def test_mask_round_trip(mask):
    assert np.array_equal(decode_mask(encode_mask(mask)), mask)


def test_decode_mask_rejects_wrong_size():
    enc = encode_mask(np.ones((4, 4), bool))
    enc["shape"] = [40, 40]
    with pytest.raises(ValueError, match="does not fit"):
        decode_mask(enc)


def test_write_tiff_round_trip_and_leaves_no_temporary(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = write_tiff(tmp_path / "sub" / "a.tif", data, {"method": "dip", "nested": {"a": [1, 2]}})
    back, meta = read_tiff(out)
    assert np.array_equal(back, data)
    assert meta == {"method": "dip", "nested": {"a": [1, 2]}}
    assert os.listdir(tmp_path / "sub") == ["a.tif"]
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable by others, like any file


def test_write_tiff_failure_keeps_old_file(tmp_path):
    out = write_tiff(tmp_path / "a.tif", np.zeros((2, 2), np.float32), {"v": 1})
    with pytest.raises(KeyError):  # tifffile has no TIFF type for object arrays
        write_tiff(out, np.zeros((2, 2), dtype=object), {"v": 2})
    back, meta = read_tiff(out)
    assert meta == {"v": 1}
    assert os.listdir(tmp_path) == ["a.tif"]


def test_read_tiff_without_metadata(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "plain.tif", np.ones((3, 3), np.uint16))
    data, meta = read_tiff(tmp_path / "plain.tif")
    assert meta == {} and data.shape == (3, 3)


def test_a_three_plane_stack_is_written_as_planes_not_rgb(tmp_path):
    import tifffile

    from napari_genprior._io import read_tiff, write_tiff

    stack = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    write_tiff(tmp_path / "s.tif", stack, {"a": 1})
    with tifffile.TiffFile(tmp_path / "s.tif") as tf:
        assert tf.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
    data, meta = read_tiff(tmp_path / "s.tif")
    np.testing.assert_array_equal(data, stack) and meta == {"a": 1}

"""LFW pairs parsing (official, Kaggle CSV, plain CSV), folds and validation."""
import hashlib

import numpy as np
import pytest

from benchmark.lfw import check_images, find_image_root, read_pairs, subset_pairs
from face_alignment.errors import DatasetError
from tests.conftest import LFW_DIR, LFW_IMAGES


def test_official_view2():
    pairs = read_pairs(LFW_DIR / "pairs.txt")
    assert hashlib.md5((LFW_DIR / "pairs.txt").read_bytes()).hexdigest() == "9f1ba174e4e1c508ff7cdf10ac338a7d"
    assert len(pairs) == 6000 and len(pairs.images) == 7701  # figures from DESIGN.md
    assert np.array_equal(pairs.folds, np.repeat(np.arange(10), 600))
    assert pairs.same[:300].all() and not pairs.same[300:600].any()
    assert pairs.images[pairs.first[0]] == "Abel_Pacheco/Abel_Pacheco_0001.jpg"
    assert pairs.images[pairs.second[0]] == "Abel_Pacheco/Abel_Pacheco_0004.jpg"
    assert check_images(pairs, find_image_root(LFW_DIR)) == []


def test_view1_folds_are_stratified():
    pairs = read_pairs(LFW_DIR / "pairsDevTest.txt")
    assert len(pairs) == 1000
    for fold in range(10):
        assert np.count_nonzero((pairs.folds == fold) & pairs.same) == 50


def test_kaggle_csv_matches_official(tmp_path):
    lines = (LFW_DIR / "pairs.txt").read_text().splitlines()[1:]
    rows = [",".join(ln.split("\t") + ([""] if len(ln.split("\t")) == 3 else [])) for ln in lines]
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("name,imagenum1,imagenum2,\n" + "\n".join(rows) + "\n")
    a, b = read_pairs(LFW_DIR / "pairs.txt"), read_pairs(csv_path)
    assert a.images == b.images
    np.testing.assert_array_equal(a.folds, b.folds)
    np.testing.assert_array_equal(a.same, b.same)


def test_plain_csv(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("path1,path2,same\na/1.jpg,a/2.jpg,1\na/1.jpg,b/1.jpg,false\n")
    pairs = read_pairs(path)
    assert pairs.images == ["a/1.jpg", "a/2.jpg", "b/1.jpg"] and pairs.same.tolist() == [True, False]


@pytest.mark.parametrize("content, message", [
    ("10 300\nAbel_Pacheco\t1\n", "line 2"),
    ("10 300\nAbel_Pacheco\tone\t4\n", "not an integer"),
    ("", "empty"),
    ("hello world foo\n", "unrecognised"),
])
def test_malformed_pairs_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "pairs.txt"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_pairs(path)


def test_missing_folder_and_images(tmp_path):
    with pytest.raises(DatasetError, match="fetch-lfw"):
        find_image_root(tmp_path / "nope")
    with pytest.raises(DatasetError, match="none of the"):
        check_images(read_pairs(LFW_DIR / "pairs.txt"), tmp_path)
    assert find_image_root(LFW_DIR) == LFW_IMAGES


def test_subset_keeps_fold_structure():
    sub = subset_pairs(read_pairs(LFW_DIR / "pairs.txt"), 5)
    assert len(sub) == 100 and np.bincount(sub.folds).tolist() == [10] * 10 and sub.same.sum() == 50

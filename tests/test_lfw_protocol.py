"""LFW pairs parsing (official, Kaggle CSV, plain CSV), folds, the LFW protocol and validation."""
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from benchmark.protocol.base import VerificationProtocol
from benchmark.protocol.cfp import find_cfp_dir
from benchmark.protocol.lfw import find_image_root, find_lfw_dir, lfw_protocol
from benchmark.protocol.pairs import read_pairs, subset_pairs
from face_alignment import pick_target_face
from face_alignment.errors import DatasetError
from tests.conftest import ALIGNED_DIR, LFW_DIR, LFW_IMAGES


@pytest.mark.shared
def test_official_view2():
    pairs = read_pairs(LFW_DIR / "pairs.txt")
    assert hashlib.md5((LFW_DIR / "pairs.txt").read_bytes()).hexdigest() == "9f1ba174e4e1c508ff7cdf10ac338a7d"
    assert len(pairs) == 6000 and len(pairs.images) == 7701  # figures from DESIGN.md
    assert np.array_equal(pairs.folds, np.repeat(np.arange(10), 600))
    assert pairs.same[:300].all() and not pairs.same[300:600].any()
    assert pairs.images[pairs.first[0]] == "Abel_Pacheco/Abel_Pacheco_0001.jpg"
    assert pairs.images[pairs.second[0]] == "Abel_Pacheco/Abel_Pacheco_0004.jpg"



@pytest.mark.shared
def test_lfw_protocol_is_view2_over_the_deep_funneled_images(caplog):
    protocol = lfw_protocol(LFW_DIR, aligned_dir=ALIGNED_DIR)
    assert protocol.name == "lfw" and protocol.image_root == LFW_IMAGES and protocol.reference_dir == ALIGNED_DIR
    assert len(protocol.pairs) == 6000 and protocol.pick_face is pick_target_face
    with caplog.at_level(logging.WARNING):
        protocol.check_images()  # every image is there, and every reference crop
    assert not caplog.records
    # the fingerprint is over the pairs themselves: the same file gives the same one, a subset another
    assert protocol.pairs.fingerprint() == read_pairs(LFW_DIR / "pairs.txt").fingerprint()
    subset = lfw_protocol(LFW_DIR, max_pairs=40).pairs
    assert len(subset) == 40 and subset.fingerprint() != protocol.pairs.fingerprint()


@pytest.mark.parametrize("find, env, folder, says", [
    (find_lfw_dir, "FACEBENCH_LFW", "lfw", r"no LFW folder given or found .*data/lfw, \.\./shared/data/lfw.*fetch-lfw"),
    (find_cfp_dir, "FACEBENCH_CFP", "cfp", r"no CFP folder given or found .*data/cfp, \.\./shared/data/cfp"),
])
def test_data_folder_lookup(tmp_path, monkeypatch, find, env, folder, says):
    monkeypatch.chdir(tmp_path)  # neither data/<set> nor ../shared/data/<set> from here
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(DatasetError, match=says):
        find()
    (tmp_path / "data" / folder).mkdir(parents=True)
    assert find() == Path("data") / folder
    monkeypatch.setenv(env, str(tmp_path))
    assert find() == tmp_path and find("elsewhere").name == "elsewhere"


@pytest.mark.shared
def test_view1_folds_are_stratified():
    pairs = read_pairs(LFW_DIR / "pairsDevTest.txt")
    assert len(pairs) == 1000
    for fold in range(10):
        assert np.count_nonzero((pairs.folds == fold) & pairs.same) == 50


@pytest.mark.shared
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


def test_missing_folder_and_images(tmp_path, caplog):
    with pytest.raises(DatasetError, match="fetch-lfw"):
        find_image_root(tmp_path / "nope")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.jpg").write_bytes(b"")
    csv = tmp_path / "pairs.csv"
    csv.write_text("path1,path2,same\na/1.jpg,a/2.jpg,1\n")
    with pytest.raises(DatasetError, match=r"none of the 2 images .* is under .*elsewhere .*\. Get the data$"):
        VerificationProtocol("mine", tmp_path / "elsewhere", read_pairs(csv), data_hint="Get the data").check_images()
    with caplog.at_level(logging.WARNING):
        VerificationProtocol("mine", tmp_path, read_pairs(csv)).check_images()
    assert "1 of 2 images are missing" in caplog.text and "a/2.jpg" in caplog.text


@pytest.mark.shared
def test_image_root_inside_the_lfw_folder():
    assert find_image_root(LFW_DIR) == LFW_IMAGES and find_image_root(LFW_IMAGES) == LFW_IMAGES


@pytest.mark.shared
def test_subset_keeps_fold_structure():
    sub = subset_pairs(read_pairs(LFW_DIR / "pairs.txt"), 5)
    assert len(sub) == 100 and np.bincount(sub.folds).tolist() == [10] * 10 and sub.same.sum() == 50


@pytest.mark.shared
def test_what_the_protocol_changes_is_said(caplog):
    with caplog.at_level(logging.WARNING):
        assert len(lfw_protocol(LFW_DIR, max_pairs=240).pairs) == 240
    assert not caplog.records  # a multiple of 20 is kept as it is
    with caplog.at_level(logging.WARNING):
        assert len(lfw_protocol(LFW_DIR, max_pairs=250).pairs) == 240
    assert "--max-pairs 250: using 240 pairs, 12 same and 12 different in each of the 10 folds" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        lfw_protocol(ALIGNED_DIR, pairs=LFW_DIR / "pairs.txt")  # the crops where the originals belong
    assert "are 112x112: aligned crops?" in caplog.text

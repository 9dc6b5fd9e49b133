"""CFP: the protocol reader against the counts of its README, the face choice for loose crops, and
a run on a CFP subset (its folder says which data set it holds; compare refuses to mix data sets)."""
import numpy as np
import pytest

import benchmark
from benchmark.protocol.cfp import cfp_protocol
from benchmark.report.compare import RunMismatchError
from face_alignment import Face
from face_alignment.errors import DatasetError, FaceBenchError
from face_alignment.selection import pick_central_face
from tests.conftest import LFW_DIR, SHARED, WEIGHTS_DIR

CFP_DIR = SHARED / "data" / "cfp"


def _face(x1, y1, x2, y2) -> Face:
    return Face(np.array([x1, y1, x2, y2], np.float32), 0.9, np.zeros((5, 2), np.float32))


def test_the_central_large_face_is_chosen():
    shape = (400, 400, 3)  # centre (200, 200)
    subject = _face(150, 140, 260, 270)
    bigger_off_centre = _face(0, 0, 160, 160)
    small_at_centre = _face(190, 190, 215, 215)  # a face in the background, under a quarter the size
    assert pick_central_face([bigger_off_centre, subject, small_at_centre], shape) is subject
    assert pick_central_face([small_at_centre], shape) is small_at_centre  # the only one
    assert pick_central_face([], shape) is None


@pytest.mark.shared
@pytest.mark.parametrize("dataset, unique_images", [("cfp-fp", 5901), ("cfp-ff", 4764)])
def test_protocol_counts_are_the_readmes(dataset, unique_images):
    protocol = cfp_protocol(dataset, CFP_DIR)
    pairs = protocol.pairs
    # 10 folds x (350 same + 350 different), fold by fold (the README's sanity checks)
    assert len(pairs) == 7000 and np.bincount(pairs.folds).tolist() == [700] * 10
    for fold in range(10):
        assert np.count_nonzero((pairs.folds == fold) & pairs.same) == 350
    assert len(pairs.images) == unique_images  # FP: 5,901 of the 7,000 images take part
    assert all((protocol.image_root / image).is_file() for image in pairs.images)
    # every same pair is one person, every different pair two; fold k holds people 50k+1 .. 50k+50
    person = np.array([int(image.split("/")[0]) for image in pairs.images])
    first, second = person[pairs.first], person[pairs.second]
    assert np.array_equal(first == second, pairs.same)
    assert np.array_equal((first - 1) // 50, pairs.folds) and np.array_equal((second - 1) // 50, pairs.folds)
    kinds = {image.split("/")[1] for image in np.array(pairs.images)[pairs.second]}
    assert kinds == ({"profile"} if dataset == "cfp-fp" else {"frontal"})


@pytest.mark.shared
def test_a_broken_split_file_is_a_clear_error(tmp_path):
    import shutil

    copy = tmp_path / "cfp"
    shutil.copytree(CFP_DIR / "Protocol", copy / "Protocol")
    (copy / "Protocol/Split/FP/03/diff.txt").write_text("12,7\n12;8\n")
    with pytest.raises(DatasetError, match=r"Split/FP/03/diff.txt line 2: expected two indices 'i,j'"):
        cfp_protocol("cfp-fp", copy)
    with pytest.raises(DatasetError, match="Pair_list_F.txt does not exist: not a CFP folder"):
        cfp_protocol("cfp-fp", tmp_path / "nothing")


@pytest.mark.shared
def test_a_cfp_run_says_its_data_set_and_compare_keeps_data_sets_apart(tmp_path):
    report = benchmark.run_cfp(["yunet"], "cfp-fp", cfp_dir=CFP_DIR, weights_dir=WEIGHTS_DIR, out=tmp_path / "fp",
                               device="cpu", max_pairs=40, progress=False, isolate=False)
    assert report["dataset"].tolist() == ["cfp-fp"] and report["n_pairs"].tolist() == [40]
    assert report["success_rate"].iloc[0] == 1.0 and 0.7 <= report["accuracy"].iloc[0] <= 1.0
    run = benchmark.load_run(tmp_path / "fp")
    assert run.dataset == "cfp-fp" and (tmp_path / "fp/summary.md").read_text().startswith("# facebench CFP-FP run")
    benchmark.run_lfw(["yunet"], lfw_dir=LFW_DIR, weights_dir=WEIGHTS_DIR, out=tmp_path / "lfw", device="cpu",
                      max_pairs=40, progress=False, isolate=False)
    with pytest.raises(RunMismatchError, match="holds cfp-fp and .* holds lfw: compare runs on the same data set"):
        benchmark.compare_runs(tmp_path / "fp", tmp_path / "lfw")
    with pytest.raises(FaceBenchError, match="cfp-fp has its own pairs and no reference crops"):
        benchmark.run_cfp(["yunet"], "cfp-fp", cfp_dir=CFP_DIR, weights_dir=WEIGHTS_DIR, out=tmp_path / "x",
                          aligned_dir=LFW_DIR / "aligned-112", progress=False)

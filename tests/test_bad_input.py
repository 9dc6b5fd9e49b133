"""Bad input, generated from real LFW images: each file gets its documented treatment (README,
"Bad input"), a configuration that cannot work stops before the run with a clear message, and
no traceback reaches the user. Runs go through the CLI entry point."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main
from face_alignment import load_image
from face_alignment.errors import ImageError
from tests.conftest import LFW_DIR, LFW_IMAGES, WEIGHTS_DIR

pytestmark = pytest.mark.shared

SOURCE = "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"  # a frontal face every detector finds
#: real LFW pairs (same, different) that keep the run's metrics meaningful beside the bad files
GOOD_PAIRS = [
    ("Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0004.jpg", 1),
    ("Akhmed_Zakayev/Akhmed_Zakayev_0001.jpg", "Akhmed_Zakayev/Akhmed_Zakayev_0003.jpg", 1),
    ("Amber_Tamblyn/Amber_Tamblyn_0001.jpg", "Amber_Tamblyn/Amber_Tamblyn_0002.jpg", 1),
    ("Abel_Pacheco/Abel_Pacheco_0001.jpg", "Amber_Tamblyn/Amber_Tamblyn_0001.jpg", 0),
    ("Akhmed_Zakayev/Akhmed_Zakayev_0001.jpg", "Aaron_Eckhart/Aaron_Eckhart_0001.jpg", 0),
    ("Amber_Tamblyn/Amber_Tamblyn_0002.jpg", "Abel_Pacheco/Abel_Pacheco_0004.jpg", 0),
]
CLI = ["--methods", "yunet", "--weights-dir", str(WEIGHTS_DIR), "--device", "cpu", "--quiet"]
DECODED = "decoded"  # status of a file that is read as an image: found or no_face_fallback, never unreadable


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _corpus(rgb: np.ndarray, jpeg: bytes) -> dict[str, tuple[bytes | None, str, str]]:
    """file name -> (content, or None for no file; expected status; expected reason)."""
    header_broken = bytearray(jpeg)
    header_broken[2:40] = bytes(38)  # the JPEG markers after SOI zeroed
    data_broken = bytearray(jpeg)
    data_broken[3000:3100] = bytes(b ^ 0x5A for b in data_broken[3000:3100])  # inside the entropy-coded data
    pil = Image.fromarray(rgb)
    upright_on_display = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1)))  # stored turned left ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... and tagged "rotate 90 degrees clockwise to display"
    big = cv2.resize(rgb, (8000, 8000), interpolation=cv2.INTER_LINEAR)
    return {
        "corrupt_header.jpg": (bytes(header_broken), "unreadable", "not a decodable image"),
        "corrupt_data.jpg": (bytes(data_broken), DECODED, ""),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "unreadable", "not a decodable image"),
        "truncated.png": (_encode(pil, "PNG")[:20000], "unreadable", "not a decodable image"),
        "zero_bytes.jpg": (b"", "unreadable", "empty file"),
        "alpha.png": (_encode(Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])), "PNG"),
                      "found", ""),
        "gray.jpg": (_encode(pil.convert("L"), "JPEG", quality=95), "found", ""),
        "16bit.png": (cv2.imencode(".png", (rgb[:, :, ::-1].astype(np.uint16) * 257))[1].tobytes(), "found", ""),
        "cmyk.jpg": (_encode(pil.convert("CMYK"), "JPEG", quality=95), "found", ""),
        "exif_rotated.jpg": (_encode(upright_on_display, "JPEG", quality=95, exif=exif.tobytes()), "found", ""),
        "one_pixel.png": (_encode(pil.crop((125, 125, 126, 126)), "PNG"), "no_face_fallback", "no face found"),
        "8000x8000.jpg": (cv2.imencode(".jpg", big[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes(),
                          "found", ""),
        "text.jpg": (b"this is a text file, not a JPEG\n" * 20, "unreadable", "not a decodable image"),
        "missing.jpg": (None, "unreadable", "missing file"),
        "Empty_Person/Empty_Person_0001.jpg": (None, "unreadable", "missing file"),  # the folder has no images
    }


@pytest.fixture(scope="module")
def bad_lfw(tmp_path_factory) -> tuple[Path, dict]:
    """An LFW-like folder: real images for GOOD_PAIRS plus the bad files, each paired with a
    good image in ``pairs.csv`` (path1,path2,same)."""
    root = tmp_path_factory.mktemp("bad_lfw")
    images = root / "lfw-deepfunneled"
    jpeg = (LFW_IMAGES / SOURCE).read_bytes()
    corpus = _corpus(load_image(LFW_IMAGES / SOURCE), jpeg)
    for rel in {p for pair in GOOD_PAIRS for p in pair[:2]}:
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(LFW_IMAGES / rel, images / rel)
    (images / "Empty_Person").mkdir()
    (images / "bad").mkdir()
    for name, (content, _, _) in corpus.items():
        if content is not None:
            (images / "bad" / name).write_bytes(content)
    rows = [f"{a},{b},{same}" for a, b, same in GOOD_PAIRS]
    rows += [f"{SOURCE},{name if '/' in name else 'bad/' + name},0" for name in corpus]
    (root / "pairs.csv").write_text("path1,path2,same\n" + "\n".join(rows) + "\n")
    expected = {(name if "/" in name else f"bad/{name}"): treatment[1:] for name, treatment in corpus.items()}
    return root, expected


def test_each_bad_file_gets_its_treatment_and_the_run_finishes(bad_lfw, tmp_path, capfd, caplog):
    root, expected = bad_lfw
    out = tmp_path / "out"
    code = main(["--lfw-dir", str(root), "--pairs", str(root / "pairs.csv"), "--out", str(out), *CLI])
    err = capfd.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    assert "2 of 22 images are missing" in caplog.text  # said before the run starts, and counted in the log
    with open(out / "images/yunet.csv", newline="") as fh:
        log = {row["image"]: (row["status"], row["reason"]) for row in csv.DictReader(fh)}
    for image, (status, reason) in expected.items():
        got_status, got_reason = log[image]
        if status == DECODED:
            assert got_status in ("found", "no_face_fallback"), image
        else:
            assert got_status == status, (image, log[image])
        assert reason in got_reason, (image, log[image])
    with open(out / "report.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["error"] == "" and row["n_pairs"] == str(len(GOOD_PAIRS) + len(expected))
    not_found = sum(status != "found" for status, _ in log.values())
    assert row["n_failed_images"] == str(not_found)


def test_converted_images_keep_their_pixels_and_colours(bad_lfw):
    root, _ = bad_lfw
    bad = root / "lfw-deepfunneled" / "bad"
    original = load_image(LFW_IMAGES / SOURCE)
    exact = {name: load_image(bad / name) for name in ("alpha.png", "16bit.png")}
    for name, image in exact.items():  # lossless files: the same pixels (alpha dropped, 16 bits >> 8)
        np.testing.assert_array_equal(image, original, err_msg=name)
    gray = load_image(bad / "gray.jpg")
    assert gray.shape == (250, 250, 3) and (gray[..., 0] == gray[..., 2]).all()
    # CMYK (Pillow's, converted by OpenCV) and the EXIF-rotated JPEG: the original's colours in
    # RGB order and orientation, within JPEG's loss (a swapped R/B or a turned image is ~40 off)
    for name in ("cmyk.jpg", "exif_rotated.jpg"):
        image = load_image(bad / name).astype(int)
        per_channel = np.abs(image - original).mean(axis=(0, 1))
        assert image.shape == original.shape and (per_channel < 2.5).all(), (name, per_channel)
    assert load_image(bad / "8000x8000.jpg").shape == (8000, 8000, 3)
    assert load_image(bad / "one_pixel.png").shape == (1, 1, 3)
    assert load_image(bad / "corrupt_data.jpg").shape == (250, 250, 3)  # libjpeg's recovery
    with pytest.raises(ImageError, match="cannot read"):
        load_image(bad)  # a folder where a file was expected


TRUNCATED = "(the real pairs.txt, last line dropped)"


@pytest.mark.parametrize("content, message", [
    ("10 300\nAbel_Pacheco\t1\t4\nAbel_Pacheco\t1\n", "line 3: expected 3 fields"),
    ("10 300\n\nAbel_Pacheco\t1\t4\n\n\nAbel_Pacheco\tone\t4\n", "line 6: image number 'one' is not an integer"),
    ("10 300\nAbel_Pacheco\t0\t4\n", "line 2: image number 0 is not a valid LFW number"),
    ("1\nAbel_Pacheco\t1\t4\nAbel_Pacheco\t1\tAkhmed_Zakayev\t1\nAbel_Pacheco\t2\t4\n", "announces 2 pairs"),
    ("1\nAbel_Pacheco\t1\tAkhmed_Zakayev\t1\nAbel_Pacheco\t1\t4\n", "line 2: expected a same-person"),
    (TRUNCATED, "announces 6000 pairs, the file has 5999"),
    ("hello world foo\nbar baz qux\n", "unrecognised pairs layout"),
    (b"\xff\xfe\x00\x81binary", "is not UTF-8 text"),
    ("", "is empty"),
])
def test_malformed_pairs_file_is_a_clear_error_before_the_run(tmp_path, capfd, content, message):
    path = tmp_path / "pairs.txt"
    if content == TRUNCATED:
        content = "\n".join((LFW_DIR / "pairs.txt").read_text().splitlines()[:-1]) + "\n"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["--lfw-dir", str(LFW_DIR), "--pairs", str(path), "--out", str(tmp_path / "out"), *CLI]) == 2
    err = capfd.readouterr().err
    assert err.startswith("facebench: error: ") and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()  # stopped before anything was written


@pytest.mark.parametrize("case, message", [
    ("empty_lfw_dir", "no pairs.txt or pairs.csv in"),
    ("pairs_but_no_images", "none of the 7701 images"),
    ("missing_lfw_dir", "does not exist"),
    ("missing_aligned_dir", "none of the 68 images"),
    ("out_is_a_file", "cannot write to the output folder"),
    ("plain_csv_empty_path", "line 2: an image path is empty"),
])
def test_unusable_configuration_is_a_clear_error(tmp_path, capfd, case, message):
    lfw, out, extra = LFW_DIR, tmp_path / "out", ["--max-pairs", "40"]
    if case == "empty_lfw_dir":
        lfw = tmp_path / "empty"
        lfw.mkdir()
    elif case == "pairs_but_no_images":
        lfw = tmp_path / "lfw"
        (lfw / "lfw-deepfunneled").mkdir(parents=True)
        shutil.copy(LFW_DIR / "pairs.txt", lfw)
        extra = []
    elif case == "missing_lfw_dir":
        lfw = tmp_path / "nowhere"
    elif case == "missing_aligned_dir":
        extra += ["--aligned-dir", str(tmp_path / "no_crops")]
    elif case == "out_is_a_file":
        out.write_text("a file, not a folder")
    elif case == "plain_csv_empty_path":
        (tmp_path / "mine.csv").write_text(f"path1,path2,same\n,{SOURCE},1\n")
        extra = ["--pairs", str(tmp_path / "mine.csv")]
    assert main(["--lfw-dir", str(lfw), "--out", str(out), *extra, *CLI]) == 2
    err = capfd.readouterr().err
    assert err.startswith("facebench: error: ") and message in err and "Traceback" not in err, err


@pytest.mark.parametrize("flag", ["--batch-size", "--workers", "--detect-batch", "--max-pairs"])
def test_non_positive_counts_are_refused_by_the_parser(capsys, flag):
    with pytest.raises(SystemExit) as stop:
        main([flag, "0", *CLI])
    assert stop.value.code == 2 and "0 is not a positive integer" in capsys.readouterr().err

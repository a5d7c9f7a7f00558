#!/usr/bin/env python3
"""Python peer for the face data-pipeline benchmark (single core).

What it produces
----------------
One JSON object on stdout (and optionally in a file):

    {"peer": "python cv2+skimage", "images_per_s_per_core": ..., "images": n,
     "seconds": ..., "passes": ..., "mean_decoded_size": {...},
     "stage_us": {...}, "timed_steps": [...], "versions": {...}, ...}

"images" is the number of faces in one pass; images_per_s_per_core counts
faces processed per second of wall time on one thread.

What is timed, per face (box with 68 landmarks in the dlib example xmls)
-----------------------------------------------------------------------
  1. cv2.imdecode(jpeg bytes, IMREAD_COLOR)          (BGR uint8)
  2. cv2.cvtColor BGR -> RGB
  3. skimage SimilarityTransform fitted from the 5 points to the ArcFace
     112x112 template
  4. cv2.warpAffine to 112x112, INTER_LINEAR, constant 0 border
  5. horizontal flip, materialised (np.fliplr(...).copy())
  6. (x - 127.5) / 127.5 as float32, HWC -> CHW, contiguous

Not timed (done once up front): reading the JPEG files into memory, parsing
the xml and reducing the 68 landmarks to the 5 alignment points.  A face's
image is decoded once per face (images with several faces are decoded
several times), as a per-face training pipeline would.

The loop runs over all faces repeatedly until at least --min-seconds of wall
time has passed (after one untimed warm-up pass).  A separate, shorter pass
with per-stage timers gives "stage_us" (mean microseconds per face per
stage); it is not used for the headline figure.

Single-threaded: OMP/OpenBLAS/MKL thread counts are set to 1 before numpy is
imported and cv2.setNumThreads(1) is called.

With --records DIR (a RecordIO train.rec/train.idx of 112x112 aligned JPEG
faces, as insightface's training sets are), also "records_images_per_s_per_core":
per face, the record read out of the file's bytes (scripts/recordio_reference.py)
and its image decoded, converted to RGB, flipped and normalised as above -- what
training on such a set does per face.

How to run
----------
    /tmp/pyref/bin/pip install -r scripts/requirements-reference.txt
    /tmp/pyref/bin/python scripts/pipeline_bench.py \
        [--data /work/shared/golden/dlib_faces] [--min-seconds 3] [--json-out PATH]
        [--records DIR]
"""

import os

# Must happen before numpy / cv2 are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
import skimage  # noqa: E402
from skimage.transform import SimilarityTransform  # noqa: E402

# Shared with the alignment reference: xml parsing, 68 -> 5 points, template.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from align_reference import (  # noqa: E402
    ARCFACE_TEMPLATE, CROP_SIZE, DEFAULT_DATA, XML_FILES, five_points, parse_faces)
from recordio_reference import _load, parse_payload, read_record_at  # noqa: E402

TEMPLATE = np.array(ARCFACE_TEMPLATE, dtype=np.float64)

if hasattr(SimilarityTransform, "from_estimate"):  # skimage >= 0.26
    def fit_similarity(src):
        return SimilarityTransform.from_estimate(src, TEMPLATE).params[0:2, :]
else:
    def fit_similarity(src):
        tform = SimilarityTransform()
        tform.estimate(src, TEMPLATE)
        return tform.params[0:2, :]


def load_faces(data_dir):
    """[(jpeg_bytes as np.uint8 array, points5)] for every usable face; bytes read once per file."""
    blobs, faces = {}, []
    for xml_name, _prefix in XML_FILES:
        for image_file, _box, points68, reason in parse_faces(os.path.join(data_dir, xml_name)):
            if points68 is None:
                print(f"skipping {xml_name} {image_file} box {_box}: {reason}", file=sys.stderr)
                continue
            if image_file not in blobs:
                with open(os.path.join(data_dir, image_file), "rb") as f:
                    blobs[image_file] = np.frombuffer(f.read(), dtype=np.uint8)
            faces.append((blobs[image_file], five_points(points68)))
    return faces


def process(jpeg, points5):
    """The timed pipeline for one face; returns a (3, 112, 112) float32 array."""
    bgr = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    matrix = fit_similarity(points5)
    crop = cv2.warpAffine(rgb, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    flipped = np.fliplr(crop).copy()
    norm = (flipped.astype(np.float32) - 127.5) / 127.5
    return np.ascontiguousarray(norm.transpose(2, 0, 1))


def stage_breakdown(faces, passes):
    """Mean microseconds per face for each step (separate, instrumented run)."""
    names = ["imdecode", "bgr2rgb", "similarity_fit", "warp_affine", "flip", "normalise_chw"]
    totals = np.zeros(len(names))
    clock = time.perf_counter
    for _ in range(passes):
        for jpeg, pts in faces:
            t0 = clock()
            bgr = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
            t1 = clock()
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t2 = clock()
            matrix = fit_similarity(pts)
            t3 = clock()
            crop = cv2.warpAffine(rgb, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            t4 = clock()
            flipped = np.fliplr(crop).copy()
            t5 = clock()
            norm = (flipped.astype(np.float32) - 127.5) / 127.5
            np.ascontiguousarray(norm.transpose(2, 0, 1))
            t6 = clock()
            totals += np.diff([t0, t1, t2, t3, t4, t5, t6])
    n = passes * len(faces)
    return {name: round(1e6 * t / n, 2) for name, t in zip(names, totals)}


def record_face(buf, offset):
    """One aligned face of a RecordIO file: read, decode, flip, normalise."""
    image = parse_payload(read_record_at(buf, offset))[-1]
    bgr = cv2.imdecode(np.frombuffer(image, dtype=np.uint8), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    flipped = np.fliplr(rgb).copy()
    norm = (flipped.astype(np.float32) - 127.5) / 127.5
    return np.ascontiguousarray(norm.transpose(2, 0, 1))


def records_rate(directory, min_seconds):
    """Faces per second through record_face over every record of the directory."""
    entries, buf = _load(directory)
    offsets = [off for _, off in entries]
    for off in offsets:  # warm-up, and a check of the output
        assert record_face(buf, off).shape == (3, CROP_SIZE, CROP_SIZE)
    passes, start = 0, time.perf_counter()
    while True:
        for off in offsets:
            record_face(buf, off)
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return round(passes * len(offsets) / elapsed, 2), len(offsets)


def cpu_model():
    """CPU model string from /proc/cpuinfo where available."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder with the xml files and JPEGs")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="minimum timed wall time")
    parser.add_argument("--json-out", help="also write the JSON result to this file")
    parser.add_argument("--records", help="a RecordIO directory of aligned faces to time too")
    args = parser.parse_args()

    cv2.setNumThreads(1)
    faces = load_faces(args.data)
    n = len(faces)

    # Warm-up pass (untimed); also gathers decoded-size statistics and checks output shape.
    sizes = []
    for jpeg, pts in faces:
        out = process(jpeg, pts)
        assert out.shape == (3, CROP_SIZE, CROP_SIZE) and out.dtype == np.float32
        h, w = cv2.imdecode(jpeg, cv2.IMREAD_COLOR).shape[:2]
        sizes.append((w, h))
    sizes = np.array(sizes, dtype=np.float64)

    # Headline measurement: whole passes until min_seconds has elapsed.
    passes = 0
    start = time.perf_counter()
    while True:
        for jpeg, pts in faces:
            process(jpeg, pts)
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= args.min_seconds:
            break

    result = {
        "peer": "python cv2+skimage",
        "images_per_s_per_core": round(passes * n / elapsed, 2),
        "images": n,
        "passes": passes,
        "seconds": round(elapsed, 4),
        "mean_decoded_size": {
            "width": round(float(sizes[:, 0].mean()), 2),
            "height": round(float(sizes[:, 1].mean()), 2),
            "megapixels": round(float((sizes[:, 0] * sizes[:, 1]).mean() / 1e6), 4),
        },
        "stage_us": stage_breakdown(faces, max(1, passes // 4)),
        "timed_steps": ["imdecode IMREAD_COLOR", "BGR2RGB", "SimilarityTransform fit (5 pts)",
                        "warpAffine 112x112 INTER_LINEAR", "fliplr copy", "(x-127.5)/127.5 f32 CHW"],
        "threads": {"cv2": cv2.getNumThreads(), "OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]},
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-image": skimage.__version__,
            "opencv": cv2.__version__,
            "pillow": PIL.__version__,
        },
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count()},
    }
    if args.records:
        rate, count = records_rate(args.records, args.min_seconds)
        result["records_images_per_s_per_core"] = rate
        result["records"] = count
    text = json.dumps(result)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

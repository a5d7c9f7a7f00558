#!/usr/bin/env python3
"""Golden reference for 5-point ArcFace face alignment (our own script).

What it produces
----------------
For every face box that carries all 68 landmarks in the two dlib example
annotation files

    <data>/training_with_face_landmarks.xml
    <data>/testing_with_face_landmarks.xml

it writes

  * a 112x112 RGB PNG crop to
        crates/poseface-data/tests/fixtures/align/crops/<prefix>_<stem>_<box>.png
    where <prefix> is "train" or "test" (after the xml it came from), <stem>
    is the image file name without extension and <box> is the 0-based index
    of the box within its <image> element (counting every <box>, including
    any that are skipped);
  * crates/poseface-data/tests/fixtures/align/reference.json with the
    ArcFace template and, per face, the xml name, image name, box index, the
    five alignment points, the 2x3 similarity matrix and the crop path.

The 68 landmarks themselves are not stored; the Rust test reads them from the
xml files directly.

Recipe (the thing the Rust code must reproduce)
-----------------------------------------------
  1. 68 iBUG points (0-based indices) -> 5 points, float64:
        [mean(36..41), mean(42..47), p30, p48, p54]
     i.e. image-left eye (subject's right), image-right eye, nose tip,
     image-left mouth corner, image-right mouth corner.
  2. skimage SimilarityTransform estimated from those 5 points (src) onto the
     ArcFace 112x112 template (dst) -- least-squares Umeyama fit, no
     reflection.  M = params[0:2, :] maps image coords -> crop coords.
  3. Decode with cv2.imread (BGR), convert to RGB, then
        cv2.warpAffine(rgb, M, (112, 112), flags=INTER_LINEAR,
                       borderMode=BORDER_CONSTANT, borderValue=0)
     (cv2 inverts M internally; each output pixel samples the source at
     M^-1 * (x, y)).

Information only (printed, not written): per JPEG, max / mean absolute
difference between cv2.imread and PIL decodes, and between cv2's
fixed-point bilinear warp and an exact float64 bilinear warp of the same
decoded image, so the Rust tests can pick sensible tolerances.

How to run
----------
    python3 -m venv /tmp/pyref
    /tmp/pyref/bin/pip install -r scripts/requirements-reference.txt
    /tmp/pyref/bin/python scripts/align_reference.py \
        [--data /work/shared/golden/dlib_faces] [--out crates/poseface-data/tests/fixtures/align]

Run from the workspace root (paths default relative to this script).
"""

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import skimage
from PIL import Image
from skimage.transform import SimilarityTransform

# ArcFace / InsightFace canonical 5-point template for a 112x112 crop.
ARCFACE_TEMPLATE = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
]
CROP_SIZE = 112

XML_FILES = [
    ("training_with_face_landmarks.xml", "train"),
    ("testing_with_face_landmarks.xml", "test"),
]

WORKSPACE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = "/work/shared/golden/dlib_faces"
DEFAULT_OUT = os.path.join(WORKSPACE, "crates", "poseface-data", "tests", "fixtures", "align")


def parse_faces(xml_path):
    """Yield (image_file, box_index, points68 or None, skip_reason or None).

    box_index counts every <box> in its <image>, so indices stay stable even
    when a box is skipped.
    """
    root = ET.parse(xml_path).getroot()
    for image in root.iter("image"):
        file_name = image.get("file")
        for box_index, box in enumerate(image.findall("box")):
            if box.get("ignore", "0") not in ("0", "", "false"):
                yield file_name, box_index, None, "marked ignore"
                continue
            parts = {}
            for part in box.findall("part"):
                parts[int(part.get("name"))] = (float(part.get("x")), float(part.get("y")))
            if sorted(parts) != list(range(68)):
                yield file_name, box_index, None, f"has {len(parts)} parts, not 68"
                continue
            points = np.array([parts[i] for i in range(68)], dtype=np.float64)
            yield file_name, box_index, points, None


def five_points(points68):
    """68 iBUG landmarks -> the 5 ArcFace alignment points (float64, 5x2)."""
    return np.stack([
        points68[36:42].mean(axis=0),  # eye on the image's left (subject's right)
        points68[42:48].mean(axis=0),  # eye on the image's right
        points68[30],                  # nose tip
        points68[48],                  # mouth corner, image left
        points68[54],                  # mouth corner, image right
    ])


def similarity_matrix(src, dst):
    """2x3 similarity (rotation+uniform scale+translation) mapping src -> dst."""
    if hasattr(SimilarityTransform, "from_estimate"):  # skimage >= 0.26
        tform = SimilarityTransform.from_estimate(src, dst)
        if not tform:
            raise RuntimeError("similarity estimation failed")
    else:
        tform = SimilarityTransform()
        if not tform.estimate(src, dst):
            raise RuntimeError("similarity estimation failed")
    return tform.params[0:2, :].copy()


def read_rgb_cv2(path):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"cv2 could not decode {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def warp_exact_bilinear(rgb, matrix, size):
    """Float64 bilinear warp, zero outside the image (information only).

    Same geometry as cv2.warpAffine with BORDER_CONSTANT=0: output pixel
    (x, y) samples the source at inverse(M) @ (x, y, 1), with integer
    coordinates at pixel centres.  Unlike cv2 there is no 1/32-pixel
    coordinate quantisation and no fixed-point weights.
    """
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    fx = (sx - x0)[..., None]
    fy = (sy - y0)[..., None]
    h, w = rgb.shape[:2]
    src = rgb.astype(np.float64)

    def tap(yy, xx):
        inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        out = np.zeros(xx.shape + (rgb.shape[2],))
        out[inside] = src[yy[inside], xx[inside]]
        return out

    top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
    bottom = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def write_reference_json(path, template, faces):
    """Compact JSON, one face per line; floats use repr (shortest round-trip)."""
    lines = ["{", f'"template": {json.dumps(template)},', '"faces": [']
    for i, face in enumerate(faces):
        sep = "," if i + 1 < len(faces) else ""
        lines.append(json.dumps(face, separators=(",", ":")) + sep)
    lines += ["]", "}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder with the xml files and JPEGs")
    parser.add_argument("--out", default=DEFAULT_OUT, help="fixture folder to write")
    args = parser.parse_args()

    crops_dir = os.path.join(args.out, "crops")
    os.makedirs(crops_dir, exist_ok=True)
    template = np.array(ARCFACE_TEMPLATE, dtype=np.float64)

    faces, skipped = [], []
    decoded = {}   # image file -> RGB array (cv2), decoded once
    warp_diffs = []
    for xml_name, prefix in XML_FILES:
        for image_file, box_index, points68, reason in parse_faces(os.path.join(args.data, xml_name)):
            if points68 is None:
                skipped.append((xml_name, image_file, box_index, reason))
                continue
            if image_file not in decoded:
                decoded[image_file] = read_rgb_cv2(os.path.join(args.data, image_file))
            rgb = decoded[image_file]

            pts5 = five_points(points68)
            matrix = similarity_matrix(pts5, template)
            crop = cv2.warpAffine(rgb, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)

            stem = os.path.splitext(image_file)[0]
            crop_rel = f"crops/{prefix}_{stem}_{box_index}.png"
            # PIL writes the array as RGB (cv2.imwrite would expect BGR).
            Image.fromarray(crop, mode="RGB").save(os.path.join(args.out, crop_rel))

            exact = warp_exact_bilinear(rgb, matrix, CROP_SIZE)
            d = np.abs(crop.astype(np.float64) - exact)
            warp_diffs.append((crop_rel, d.max(), d.mean()))

            faces.append({
                "xml": xml_name,
                "image": image_file,
                "box": box_index,
                "points5": pts5.tolist(),
                "matrix": matrix.tolist(),
                "crop": crop_rel,
            })

    write_reference_json(os.path.join(args.out, "reference.json"), ARCFACE_TEMPLATE, faces)
    write_synthetic_warps(args.out)

    print(f"faces written: {len(faces)} from {len(decoded)} images -> {args.out}")
    if skipped:
        for s in skipped:
            print("skipped: %s %s box %d (%s)" % s)
    else:
        print("skipped: none")

    print("\n[info] cv2.imread vs PIL decode (RGB, uint8 abs diff):")
    print(f"  {'image':32s} {'size':>10s} {'in xml':>6s} {'max':>4s} {'mean':>8s} {'%px!=':>6s}")
    for name in sorted(f for f in os.listdir(args.data) if f.lower().endswith((".jpg", ".jpeg"))):
        path = os.path.join(args.data, name)
        a = read_rgb_cv2(path).astype(np.int16)
        b = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
        if a.shape != b.shape:
            print(f"  {name:32s} shape mismatch {a.shape} vs {b.shape}")
            continue
        d = np.abs(a - b)
        print(f"  {name:32s} {a.shape[1]:>4d}x{a.shape[0]:<5d} {'yes' if name in decoded else 'no':>6s} "
              f"{d.max():>4d} {d.mean():>8.4f} {100 * (d > 0).mean():>6.2f}")

    print("\n[info] cv2.warpAffine (fixed-point) vs exact float64 bilinear, per crop:")
    maxes = np.array([w[1] for w in warp_diffs])
    means = np.array([w[2] for w in warp_diffs])
    print(f"  over {len(warp_diffs)} crops: max abs {maxes.max():.4f}, mean of per-crop means {means.mean():.4f}, "
          f"worst per-crop mean {means.max():.4f}")

    print(f"\nversions: python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"scikit-image {skimage.__version__}, opencv {cv2.__version__}, pillow {Image.__version__}")


def synthetic_source(width=300, height=200):
    """A deterministic RGB test pattern, generated identically by the Rust test."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    planes = [(x * 7 + y * 13 + c * 50 + (x * y) % 17) % 256 for c in range(3)]
    return np.stack(planes, axis=-1).astype(np.uint8)


def write_synthetic_warps(out_dir):
    """Warps of the synthetic pattern by fixed similarity matrices: a decoder-free check of
    the warp itself (crops/synthetic_K.png + synthetic.json)."""
    src = synthetic_source()
    cases = []
    for k, (scale, angle, tx, ty) in enumerate(
        [(0.5, 0.0, 3.0, -2.0), (0.37, 12.5, -20.25, 10.75), (1.3, -33.0, -150.5, -40.0),
         (0.8, 90.0, 150.0, -100.0), (2.7463, 4.1, -400.3, -250.9)]):
        a = np.deg2rad(angle)
        m = np.array([[scale * np.cos(a), -scale * np.sin(a), tx],
                      [scale * np.sin(a), scale * np.cos(a), ty]])
        crop = cv2.warpAffine(src, m, (112, 112), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        name = f"crops/synthetic_{k}.png"
        cv2.imwrite(os.path.join(out_dir, name), crop[:, :, ::-1])
        cases.append({"matrix": m.tolist(), "crop": name})
    with open(os.path.join(out_dir, "synthetic.json"), "w") as f:
        json.dump({"source": "(x*7 + y*13 + c*50 + (x*y)%17) % 256, 300x200 RGB", "cases": cases}, f)


if __name__ == "__main__":
    main()

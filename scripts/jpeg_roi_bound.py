#!/usr/bin/env python3
"""The least decoding work a per-face photo pipeline can do, measured with libjpeg-turbo.

For every face of the pipeline benchmark (dlib's annotated photos), this finds the box of
source pixels that its 112x112 ArcFace warp reads (the output's corner pixel centres mapped
back into the photo, plus one pixel for the bilinear neighbours), writes the list, builds
scripts/jpeg_roi_bound.c against the system libjpeg-turbo (gcc and libjpeg-turbo's
development files, Debian's libjpeg62-turbo-dev), and runs it. It prints the C program's
JSON, plus the number of photos and the boxes' mean share of their photo's rows that must be
entropy-decoded (through the box's last row).

    python scripts/jpeg_roi_bound.py [--data DIR] [--min-seconds 2]
"""

import argparse
import json
import os
import subprocess
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from align_reference import (  # noqa: E402
    ARCFACE_TEMPLATE, CROP_SIZE, DEFAULT_DATA, XML_FILES, five_points, parse_faces,
    similarity_matrix)

TEMPLATE = np.array(ARCFACE_TEMPLATE, dtype=np.float64)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def boxes(data_dir):
    """[(path, x0, y0, x1, y1, photo height)]: per face, the half-open pixel box its warp
    samples."""
    out = []
    for xml_name, _prefix in XML_FILES:
        for image_file, _box, points68, _reason in parse_faces(os.path.join(data_dir, xml_name)):
            if points68 is None:
                continue
            path = os.path.join(data_dir, image_file)
            # The stored orientation: libjpeg, like our decoder, ignores EXIF rotation.
            h, w = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION).shape[:2]
            m = np.vstack([similarity_matrix(five_points(points68), TEMPLATE), [0, 0, 1]])
            inv = np.linalg.inv(m)
            # Output pixel centres 0..111 map into the photo; bilinear reads floor and floor+1.
            corners = np.array([[0, 0, 1], [CROP_SIZE - 1, 0, 1], [0, CROP_SIZE - 1, 1],
                                [CROP_SIZE - 1, CROP_SIZE - 1, 1]], dtype=np.float64).T
            src = (inv @ corners)[:2]
            # A hair of margin against float32 rounding in the warp's own arithmetic.
            x0, y0 = np.floor(src.min(axis=1) - 1e-3).astype(int)
            x1, y1 = np.floor(src.max(axis=1) + 1e-3).astype(int) + 2
            x0, y0 = max(x0, 0), max(y0, 0)
            x1, y1 = min(x1, w), min(y1, h)
            if x1 <= x0 or y1 <= y0:
                continue
            out.append((path, x0, y0, x1, y1, h))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    args = ap.parse_args()
    faces = boxes(args.data)
    if not faces:
        sys.exit(f"no faces under {args.data}")
    work = os.path.join(ROOT, "target", "bench")
    os.makedirs(work, exist_ok=True)
    listing = os.path.join(work, "roi_boxes.txt")
    with open(listing, "w") as f:
        for path, x0, y0, x1, y1, _h in faces:
            f.write(f"{path} {x0} {y0} {x1} {y1}\n")
    exe = os.path.join(work, "jpeg_roi_bound")
    subprocess.run(["gcc", "-O2", "-Wall", os.path.join(ROOT, "scripts", "jpeg_roi_bound.c"),
                    "-ljpeg", "-o", exe], check=True)
    # Only stdout is captured: the C program's messages reach the terminal.
    result = json.loads(subprocess.run([exe, listing, str(args.min_seconds)], check=True,
                                       stdout=subprocess.PIPE, text=True).stdout)
    result["photos"] = len({path for path, *_ in faces})
    result["rows_through_box_share"] = round(float(np.mean([y1 / h for *_, y1, h in faces])), 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

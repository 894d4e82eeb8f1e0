#!/usr/bin/env python3
"""INT8 calibration and evaluation data from real photos (scikit-image's sample images).

    /usr/bin/python3 bench/int8_data.py OUT_DIR [--calib N] [--eval M] [--size 224]

Writes OUT_DIR/calib/ (N crops) and OUT_DIR/eval/ (M crops), each as [1,3,S,S] float32
.npy files, ImageNet mean/std, plus the same crops as .png under OUT_DIR/calib_png/ (for
`kiln build --calib` with image decoding). The two sets come from *different photos*
(calibration: the even-numbered photos of the list, evaluation: the odd ones), as random
crops (scale 0.25-1 of the area, aspect 3/4-4/3) with random horizontal flips: accuracy is
never judged on calibration data. The photos come from the python3-skimage package that
../shared/bench/models/fetch_real_models.sh unpacks under ~/.cache/kiln-bench/debs.
"""
import argparse
import glob
import os

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg",
          "retina.jpg", "ihc.png", "motorcycle_right.png", "color.png", "brick.png", "grass.png", "gravel.png",
          "camera.png", "horse.png", "moon.png", "page.png", "coins.png", "cell.png", "microaneurysms.png"]


def find_data():
    cands = glob.glob(os.path.expanduser("~/.cache/kiln-bench/debs/skimage/usr/lib/python3/dist-packages/skimage/data"))
    cands += glob.glob("/usr/lib/python3/dist-packages/skimage/data")
    for c in cands:
        if os.path.exists(os.path.join(c, "astronaut.png")):
            return c
    raise SystemExit("no scikit-image data folder: run ../shared/bench/models/fetch_real_models.sh first")


def crop(img, rng, size):
    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(0.25, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if cw <= w and ch <= h:
            x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            break
    else:
        cw = ch = min(w, h)
        x, y = (w - cw) // 2, (h - ch) // 2
    out = img.crop((x, y, x + cw, y + ch)).resize((size, size), Image.BILINEAR)
    if rng.uniform() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--calib", type=int, default=300)
    ap.add_argument("--eval", type=int, default=100)
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    data = find_data()
    photos = [Image.open(os.path.join(data, p)).convert("RGB") for p in PHOTOS]
    for name, subset, n, seed in (("calib", photos[0::2], a.calib, 1), ("eval", photos[1::2], a.eval, 2)):
        rng = np.random.default_rng(seed)
        os.makedirs(os.path.join(a.out, name), exist_ok=True)
        if name == "calib":
            os.makedirs(os.path.join(a.out, "calib_png"), exist_ok=True)
        for i in range(n):
            img = crop(subset[i % len(subset)], rng, a.size)
            x = (np.asarray(img, np.float32) / 255.0 - MEAN) / STD
            np.save(os.path.join(a.out, name, f"{i:04d}.npy"), x.transpose(2, 0, 1)[None].astype(np.float32))
            if name == "calib":
                img.save(os.path.join(a.out, "calib_png", f"{i:04d}.png"))
        print(f"[int8_data] {a.out}/{name}: {n} crops of {len(subset)} photos")


if __name__ == "__main__":
    main()

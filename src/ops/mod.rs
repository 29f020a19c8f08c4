//! One file per op: shape rules and costs, the GPU launch, and the f64 CPU twin side by side.
//!
//! Conventions: NCHW f32 tensors; every backward kernel *writes* its outputs (never
//! accumulates), so gradient buffers need no zeroing and a tensor read twice gets its two
//! gradients summed by an explicit `residual::add`.

pub mod compare;
pub mod reduce;
pub mod relu;
pub mod residual;

/// Every uniform struct that crosses to WGSL: (shader file, WGSL struct name, Rust size).
/// A test reflects each struct with naga and checks the sizes agree.
pub fn uniform_layouts() -> Vec<(&'static str, &'static str, usize)> {
    use std::mem::size_of;
    vec![
        ("relu", "ReluParams", size_of::<relu::ReluParams>()),
        (
            "residual",
            "ResidualParams",
            size_of::<residual::ResidualParams>(),
        ),
        ("reduce", "ReduceParams", size_of::<reduce::ReduceParams>()),
    ]
}

/// Every entry point the launch code uses with the workgroup size it assumes; a test checks
/// this list and the shaders' entry points are the same set with the same sizes.
pub fn entry_points() -> Vec<(&'static str, [u32; 3])> {
    [
        relu::ENTRY_POINTS,
        residual::ENTRY_POINTS,
        reduce::ENTRY_POINTS,
    ]
    .concat()
}

//! One file per op: shape rules and costs, the GPU launch, and the f64 CPU twin side by side.
//!
//! Conventions: NCHW f32 tensors; every backward kernel *writes* its outputs (never
//! accumulates), so gradient buffers need no zeroing and a tensor read twice gets its two
//! gradients summed by an explicit `residual::add`.

pub mod batchnorm;
pub mod compare;
pub mod conv2d;
pub mod gemm;
pub mod linear;
pub mod loss;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod relu;
pub mod residual;

/// A uniform struct that crosses to WGSL: its shader file, its name (the same in Rust and
/// WGSL), its Rust size and each field's name and byte offset. A test reflects each struct
/// with naga and checks every member's offset and the size agree.
#[derive(Clone, Copy, Debug)]
pub struct Uniform {
    pub file: &'static str,
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, usize)],
}

/// `uniform!("file", Type, [field, ...])`: the `Uniform` of a `#[repr(C)]` struct, offsets
/// from the compiler.
#[macro_export]
macro_rules! uniform {
    ($file:expr, $ty:ty, [$($field:ident),* $(,)?]) => {
        $crate::ops::Uniform {
            file: $file,
            name: stringify!($ty),
            size: std::mem::size_of::<$ty>(),
            fields: &[$((stringify!($field), std::mem::offset_of!($ty, $field))),*],
        }
    };
}

/// Every uniform struct that crosses to WGSL.
pub fn uniform_layouts() -> Vec<Uniform> {
    [
        batchnorm::UNIFORMS,
        conv2d::UNIFORMS,
        gemm::UNIFORMS,
        linear::UNIFORMS,
        loss::UNIFORMS,
        optim::UNIFORMS,
        pool::UNIFORMS,
        reduce::UNIFORMS,
        relu::UNIFORMS,
        residual::UNIFORMS,
    ]
    .concat()
}

/// Every entry point the launch code uses with the workgroup size it assumes; a test checks
/// this list and the shaders' entry points are the same set with the same sizes.
pub fn entry_points() -> Vec<(&'static str, [u32; 3])> {
    [
        batchnorm::ENTRY_POINTS,
        conv2d::ENTRY_POINTS,
        gemm::ENTRY_POINTS,
        linear::ENTRY_POINTS,
        loss::ENTRY_POINTS,
        optim::ENTRY_POINTS,
        pool::ENTRY_POINTS,
        reduce::ENTRY_POINTS,
        relu::ENTRY_POINTS,
        residual::ENTRY_POINTS,
    ]
    .concat()
}

//! adaresnet: train adaptive residual networks on any GPU through WebGPU.
//!
//! Hand-written WGSL kernels (`shaders/`) run through wgpu; every kernel has a plain-Rust
//! f64 twin in `ops`, so every GPU gradient can be checked against an independent reference.

pub mod check;
pub mod cli;
pub mod data;
pub mod gpu;
pub mod graph;
pub mod model;
pub mod ops;
pub mod train;

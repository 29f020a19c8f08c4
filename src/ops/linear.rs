//! linear: being written.

pub const ENTRY_POINTS: &[(&str, [u32; 3])] = &[];
pub const UNIFORMS: &[(&str, &str, usize)] = &[];

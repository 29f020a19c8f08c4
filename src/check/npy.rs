//! The NPY (v1.0) writer behind `--dump`: C-order little-endian arrays that `numpy.load` reads.
//!
//! Written here rather than taken from a crate: the NPY crates also read, parsing headers with
//! a Python-literal grammar (py_literal -> pest -> psm) whose build script needs a C compiler
//! for each target, which stopped `cargo check --target aarch64-apple-darwin` on Linux.
//! Writing needs none of that. The bytes are those npyz 0.8 wrote, so old dumps still compare.

use std::io::{self, Write};

/// An element type NumPy knows, with its dtype string.
pub trait Element: Copy {
    const DESCR: &'static str;
    fn write_le(self, out: &mut impl Write) -> io::Result<()>;
}

impl Element for f32 {
    const DESCR: &'static str = "<f4";
    fn write_le(self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.to_le_bytes())
    }
}

impl Element for f64 {
    const DESCR: &'static str = "<f8";
    fn write_le(self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.to_le_bytes())
    }
}

/// Magic, version 1.0, the header's length (u16 LE) and the header: a Python dict literal,
/// space-padded and newline-terminated so the data starts at a multiple of 64 bytes.
fn header(descr: &str, shape: &[usize]) -> io::Result<Vec<u8>> {
    // Every dimension followed by ", ": `()` for a scalar, `(5, )` for a vector.
    let dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}").into_bytes();
    const PREAMBLE: usize = 10; // magic (6) + version (2) + header length (2)
    dict.resize(dict.len() + 63 - (PREAMBLE + dict.len()) % 64, b' ');
    dict.push(b'\n');
    let len = u16::try_from(dict.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NPY v1.0 header over 64 KiB"))?;
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend(len.to_le_bytes());
    out.extend(dict);
    Ok(out)
}

/// Writes `data` as an array of `shape` (row-major); the element count must match the shape.
pub fn write<T: Element>(mut out: impl Write, shape: &[usize], data: &[T]) -> io::Result<()> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("shape {shape:?} has {n} elements, data has {}", data.len()),
        ));
    }
    out.write_all(&header(T::DESCR, shape)?)?;
    data.iter().try_for_each(|x| x.write_le(&mut out))?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes of a 2x3 f32 array, laid out by hand from the format's description.
    #[test]
    fn bytes_follow_the_format() {
        let data = [1.0f32, -2.0, 0.5, 3.0, 0.0, f32::MAX];
        let mut file = Vec::new();
        write(&mut file, &[2, 3], &data).unwrap();

        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, ), }";
        let mut want = b"\x93NUMPY\x01\x00".to_vec();
        want.extend(118u16.to_le_bytes()); // 10 + 118 = 128, the next multiple of 64
        want.extend(dict.as_bytes());
        want.extend(std::iter::repeat_n(b' ', 118 - 1 - dict.len()));
        want.push(b'\n');
        for x in data {
            want.extend(x.to_le_bytes());
        }
        assert_eq!(file, want);
    }

    #[test]
    fn scalars_vectors_and_long_shapes_stay_aligned() {
        for shape in [
            &[][..],
            &[7],
            &[0, 4],
            &[123_456_789, 987_654_321, 5, 5, 5, 5, 5],
        ] {
            let h = header("<f8", shape).unwrap();
            assert_eq!(h.len() % 64, 0, "{shape:?}");
            assert_eq!(usize::from(u16::from_le_bytes([h[8], h[9]])), h.len() - 10);
            assert_eq!(h.last(), Some(&b'\n'));
        }
        let text = String::from_utf8(header("<f8", &[]).unwrap()[10..].to_vec()).unwrap();
        assert!(text.contains("'shape': (), }"), "{text}");
        let text = String::from_utf8(header("<f8", &[7]).unwrap()[10..].to_vec()).unwrap();
        assert!(text.contains("'shape': (7, ), }"), "{text}");
    }

    #[test]
    fn a_shape_that_does_not_match_the_data_is_an_error() {
        let err = write(Vec::new(), &[2, 2], &[1.0f64; 3]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

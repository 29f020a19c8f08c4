//! Errors a user can cause with a bad path or a corrupt file. Each one is a single line that
//! names the file, the problem and the fix, so the CLI can print it and exit non-zero.

use std::path::PathBuf;

/// What to do about a bad file, per format: the message ends with it.
pub(crate) const FIX_CIFAR: &str =
    "re-download the CIFAR-10 binary version (cifar-10-binary.tar.gz) and extract it";
pub(crate) const FIX_IDX: &str =
    "re-download the MNIST / Fashion-MNIST IDX files (raw or .gz) and keep their original names";
pub(crate) const FIX_FOLDER: &str =
    "lay images out as DIR/<class>/*.png|jpg|jpeg, one folder per class";

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: missing; {fix}")]
    Missing { path: PathBuf, fix: &'static str },

    #[error("{path}: cannot read ({source}); check the path and its permissions")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file ends before the data its header (or record size) promises.
    #[error("{path}: truncated: {detail}; {fix}")]
    Truncated {
        path: PathBuf,
        detail: String,
        fix: &'static str,
    },

    #[error("{path}: wrong magic number {found} (expected {expected}, {what}); {fix}")]
    WrongMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
        what: &'static str,
        fix: &'static str,
    },

    #[error(
        "{path}: label {label} of record {index} is out of range (only {classes} classes); {fix}"
    )]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        label: u32,
        classes: usize,
        fix: &'static str,
    },

    #[error("{path}: count mismatch: {images} images but {labels} labels in {labels_path}; {fix}")]
    CountMismatch {
        path: PathBuf,
        labels_path: PathBuf,
        images: usize,
        labels: usize,
        fix: &'static str,
    },

    #[error("{path}: no class folders found; {FIX_FOLDER}")]
    NoClasses { path: PathBuf },

    #[error("{path}: no images in this class folder (.png, .jpg, .jpeg); add some or remove it")]
    EmptyClass { path: PathBuf },

    #[error("{path}: cannot decode image ({reason}); replace or remove the file")]
    Decode { path: PathBuf, reason: String },

    /// Anything else wrong with a file's content (bad gzip, trailing bytes, a bad meta file).
    #[error("{path}: {problem}; {fix}")]
    Invalid {
        path: PathBuf,
        problem: String,
        fix: &'static str,
    },

    /// A bad argument rather than a bad file (batch size 0, a zero std, an unknown name).
    #[error("{0}")]
    Config(String),
}

impl DataError {
    /// A failed read: not-found becomes `Missing` with the format's fix, the rest stay I/O.
    pub(crate) fn read(
        path: impl Into<PathBuf>,
        source: std::io::Error,
        fix: &'static str,
    ) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            return DataError::Missing { path, fix };
        }
        DataError::Io { path, source }
    }
}

/// Folds a third-party message (a decoder's, say, which may end in a newline) onto one line,
/// so every `DataError` prints as one line.
pub(crate) fn one_line(msg: impl std::fmt::Display) -> String {
    msg.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

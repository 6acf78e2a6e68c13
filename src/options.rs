//! An option of a command given a value it cannot take. The library names the option by its
//! field (`top_p`); the command line shows it as its flag (`--top-p`).

/// `option value: accepted: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option} {value}: accepted: {accepted}")]
pub struct InvalidOption {
    pub option: &'static str,
    pub value: String,
    pub accepted: String,
}

impl InvalidOption {
    pub fn new(option: &'static str, value: impl ToString, accepted: impl Into<String>) -> Self {
        InvalidOption {
            option,
            value: value.to_string(),
            accepted: accepted.into(),
        }
    }
}

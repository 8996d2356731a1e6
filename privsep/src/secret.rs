//! A secret value: printed as `***`, zeroed on drop, exposed only on purpose.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret string (a database password, an API key).
///
/// `Debug` and `Display` print `***`; the memory is zeroed when it is dropped.
/// The only way to read it is [`Secret::expose`], so every use is greppable.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value; the caller's copy should be the one moved in.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself. Call only where the value must leave the process
    /// (a FastCGI param, a control message to its own app's worker).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }
}

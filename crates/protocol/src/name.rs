//! User and room names.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Longest user or room name, in characters.
pub const MAX_NAME_LEN: usize = 32;

/// A validated user or room name.
///
/// Names keep the case they were written with for display, but compare and hash without regard
/// to ASCII case, so `Alice` and `alice` are the same user in every map of the server.
/// Shared, not copied: a name travels with every message its user sends, and a clone is a
/// reference count.
#[derive(Clone)]
pub struct Name(Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("a name is at most {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("a name may hold only letters A-Z, digits, '_' and '-'")]
    BadCharacter,
}

impl Name {
    /// Validates `raw` against the naming rules: 1 to [`MAX_NAME_LEN`] characters from
    /// `A-Z a-z 0-9 _ -`.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(NameError::BadCharacter);
        }
        if raw.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        Ok(Self(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.0.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        fn lower(name: &Name) -> impl Iterator<Item = u8> + '_ {
            name.0.bytes().map(|b| b.to_ascii_lowercase())
        }
        lower(self).cmp(lower(other))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A name travels as its text.
impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A name that is read is checked as [`Name::parse`] checks one: what is not a name is an
/// error of the data it came in.
impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Name::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(Name::parse("Alice_42-x").is_ok());
        assert!(Name::parse(&"a".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(
            Name::parse(&"a".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong)
        );
        for bad in ["a b", "é", "a:b", "#room", "a\0"] {
            assert_eq!(Name::parse(bad), Err(NameError::BadCharacter), "{bad:?}");
        }
    }

    #[test]
    fn equality_and_hash_ignore_case_but_display_keeps_it() {
        let upper = Name::parse("ALICE").unwrap();
        let lower = Name::parse("alice").unwrap();
        assert_eq!(upper, lower);
        let set: HashSet<Name> = [upper.clone(), lower].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_eq!(upper.to_string(), "ALICE");
    }
}

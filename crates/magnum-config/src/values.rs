//! How option values are read from and written to the INI text.

use std::fmt;

/// A type an option can have.
pub trait OptionValue: Sized {
    /// Parses the (reference-expanded) text; the error is the reason shown to the operator.
    fn parse_option(text: &str) -> Result<Self, String>;
    /// Renders the value as it would be written in magnum.conf.
    fn render_option(&self) -> String;
}

impl OptionValue for String {
    fn parse_option(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
    fn render_option(&self) -> String {
        self.clone()
    }
}

macro_rules! integer_option {
    ($($ty:ty),*) => {$(
        impl OptionValue for $ty {
            fn parse_option(text: &str) -> Result<Self, String> {
                text.trim().parse::<$ty>().map_err(|_| {
                    format!("'{text}' is not an integer between {} and {}", <$ty>::MIN, <$ty>::MAX)
                })
            }
            fn render_option(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
integer_option!(u16, u32, u64, usize, i64);

impl OptionValue for bool {
    fn parse_option(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(format!("'{text}' is not a boolean (true/false)")),
        }
    }
    fn render_option(&self) -> String {
        self.to_string()
    }
}

impl<T: OptionValue> OptionValue for Option<T> {
    fn parse_option(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            T::parse_option(text).map(Some)
        }
    }
    fn render_option(&self) -> String {
        self.as_ref().map(T::render_option).unwrap_or_default()
    }
}

/// A comma-separated list (oslo `ListOpt`).
impl OptionValue for Vec<String> {
    fn parse_option(text: &str) -> Result<Self, String> {
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect())
    }
    fn render_option(&self) -> String {
        self.join(",")
    }
}

/// A secret string (password, key). Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl OptionValue for Secret {
    fn parse_option(text: &str) -> Result<Self, String> {
        Ok(Secret(text.to_string()))
    }
    fn render_option(&self) -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(u16::parse_option("9511"), Ok(9511));
        assert!(u16::parse_option("70000").is_err());
        assert!(u16::parse_option("abc").unwrap_err().contains("'abc'"));
        assert_eq!(bool::parse_option("Yes"), Ok(true));
        assert!(bool::parse_option("sure").is_err());
        assert_eq!(Option::<String>::parse_option(""), Ok(None));
        assert_eq!(
            Vec::<String>::parse_option("a, b,,c"),
            Ok(vec!["a".to_string(), "b".to_string(), "c".to_string()])
        );
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "Secret(***) ***");
        assert_eq!(secret.expose(), "hunter2");
    }
}

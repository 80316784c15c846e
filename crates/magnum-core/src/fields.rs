//! Decoding of single JSON attributes with upstream's typing rules.
//!
//! `null` always means "not given". Strings have length bounds, integers have bounds and may
//! arrive as digit strings, booleans accept JSON booleans and the strings
//! `true/false/yes/no/on/off/1/0` in any case.

use crate::DomainError;
use serde_json::Value;

/// Renders a JSON value the way error messages quote it (strings without JSON quotes).
pub fn display_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "None".to_string(),
        other => other.to_string(),
    }
}

/// A string attribute with length bounds (counted in characters).
pub fn decode_string(
    field: &str,
    value: &Value,
    min_length: usize,
    max_length: usize,
) -> Result<Option<String>, DomainError> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(text) => text,
        other => {
            return Err(DomainError::invalid_field(
                field,
                display_value(other),
                "Wrong type. Expected a string.",
            ))
        }
    };
    let n_chars = text.chars().count();
    if n_chars < min_length {
        return Err(DomainError::invalid_field(
            field,
            text,
            &format!("Value should have a minimum character requirement of {min_length}"),
        ));
    }
    if n_chars > max_length {
        return Err(DomainError::invalid_field(
            field,
            text,
            &format!("Value should have a maximum character requirement of {max_length}"),
        ));
    }
    Ok(Some(text.clone()))
}

/// An integer attribute with optional bounds; digit strings are accepted as integers.
pub fn decode_int(
    field: &str,
    value: &Value,
    minimum: Option<i64>,
    maximum: Option<i64>,
) -> Result<Option<i64>, DomainError> {
    let number = match value {
        Value::Null => return Ok(None),
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse::<i64>().ok(),
        _ => None,
    };
    let Some(number) = number else {
        return Err(DomainError::invalid_field(
            field,
            display_value(value),
            "Wrong type. Expected an integer.",
        ));
    };
    if let Some(minimum) = minimum {
        if number < minimum {
            return Err(DomainError::invalid_field(
                field,
                number,
                &format!("Value should be greater or equal to {minimum}"),
            ));
        }
    }
    if let Some(maximum) = maximum {
        if number > maximum {
            return Err(DomainError::invalid_field(
                field,
                number,
                &format!("Value should be lower or equal to {maximum}"),
            ));
        }
    }
    Ok(Some(number))
}

/// Parses the boolean spellings oslo and wsme accept.
pub fn parse_bool_text(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "y" | "t" => Some(true),
        "false" | "no" | "off" | "0" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// A boolean attribute.
pub fn decode_bool(field: &str, value: &Value) -> Result<Option<bool>, DomainError> {
    let parsed = match value {
        Value::Null => return Ok(None),
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => parse_bool_text(text),
        Value::Number(number) => match number.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| {
        DomainError::invalid_field(
            field,
            display_value(value),
            "Wrong type. Expected a boolean (true/false).",
        )
    })
}

/// A UUID attribute; returns the normalised dashed form.
pub fn decode_uuid(field: &str, value: &Value) -> Result<Option<String>, DomainError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => crate::normalize_uuid(text)
            .map(Some)
            .ok_or_else(|| DomainError::invalid_field(field, text, "Expected a uuid")),
        other => Err(DomainError::invalid_field(
            field,
            display_value(other),
            "Expected a uuid",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_respect_bounds_and_null_means_unset() {
        assert_eq!(decode_string("name", &json!(null), 1, 255), Ok(None));
        assert_eq!(
            decode_string("name", &json!("ok"), 1, 255),
            Ok(Some("ok".to_string()))
        );
        let error = decode_string("name", &json!(""), 1, 255).unwrap_err();
        assert_eq!(
            error.message,
            "Invalid input for field/attribute name. Value: ''. Value should have a minimum character requirement of 1"
        );
        assert!(decode_string("name", &json!("x".repeat(256)), 1, 255).is_err());
        assert!(decode_string("name", &json!(5), 1, 255).is_err());
    }

    #[test]
    fn integers_accept_digit_strings_and_check_bounds() {
        assert_eq!(decode_int("n", &json!(5), Some(1), None), Ok(Some(5)));
        assert_eq!(decode_int("n", &json!("7"), Some(1), None), Ok(Some(7)));
        assert_eq!(
            decode_int("node_count", &json!(-1), Some(0), None)
                .unwrap_err()
                .message,
            "Invalid input for field/attribute node_count. Value: '-1'. Value should be greater or equal to 0"
        );
        assert!(decode_int("n", &json!(70000), None, Some(65535)).is_err());
        assert!(decode_int("n", &json!("abc"), None, None).is_err());
        assert!(decode_int("n", &json!(1.5), None, None).is_err());
    }

    #[test]
    fn booleans_accept_the_oslo_spellings_strictly() {
        for (input, expected) in [
            (json!(true), true),
            (json!("Yes"), true),
            (json!("off"), false),
            (json!("0"), false),
            (json!(1), true),
        ] {
            assert_eq!(decode_bool("b", &input), Ok(Some(expected)), "{input}");
        }
        assert!(decode_bool("b", &json!("maybe")).is_err());
        assert!(decode_bool("b", &json!(2)).is_err());
    }

    #[test]
    fn uuids_are_normalised() {
        assert_eq!(
            decode_uuid("uuid", &json!("0562D357864147598FED8173F02C9633")),
            Ok(Some("0562d357-8641-4759-8fed-8173f02c9633".to_string()))
        );
        assert!(decode_uuid("uuid", &json!("nope")).is_err());
    }
}

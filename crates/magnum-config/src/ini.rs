//! A reader for the INI dialect oslo.config accepts.
//!
//! `[section]` headers, `key = value` or `key: value` lines, `#` and `;` comment lines,
//! indented continuation lines, and `$option`/`${option}` references to `[DEFAULT]` options
//! (`$$` is a literal dollar). The last of repeated keys wins.

use std::collections::BTreeMap;

/// One parsed file: section name → option name → raw value (references not yet expanded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IniDocument {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

/// A line that is neither a section, an option, a comment nor a continuation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniSyntaxError {
    pub line_number: usize,
    pub line: String,
}

impl IniDocument {
    pub fn parse(text: &str) -> Result<IniDocument, IniSyntaxError> {
        let mut document = IniDocument::default();
        let mut current_section = "DEFAULT".to_string();
        let mut last_key: Option<String> = None;
        for (index, raw_line) in text.lines().enumerate() {
            let line = raw_line.trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                if trimmed.is_empty() {
                    last_key = None;
                }
                continue;
            }
            let is_continuation = line.starts_with([' ', '\t']) && last_key.is_some();
            if is_continuation {
                if let (Some(key), Some(section)) =
                    (&last_key, document.sections.get_mut(&current_section))
                {
                    if let Some(value) = section.get_mut(key) {
                        if !value.is_empty() {
                            value.push('\n');
                        }
                        value.push_str(trimmed);
                    }
                }
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(IniSyntaxError {
                        line_number: index + 1,
                        line: raw_line.to_string(),
                    });
                };
                current_section = name.trim().to_string();
                document
                    .sections
                    .entry(current_section.clone())
                    .or_default();
                last_key = None;
                continue;
            }
            let separator = trimmed.find(['=', ':']);
            let Some(separator) = separator else {
                return Err(IniSyntaxError {
                    line_number: index + 1,
                    line: raw_line.to_string(),
                });
            };
            let key = trimmed[..separator].trim().to_string();
            let value = trimmed[separator + 1..].trim().to_string();
            if key.is_empty() {
                return Err(IniSyntaxError {
                    line_number: index + 1,
                    line: raw_line.to_string(),
                });
            }
            document
                .sections
                .entry(current_section.clone())
                .or_default()
                .insert(key.clone(), value);
            last_key = Some(key);
        }
        Ok(document)
    }

    /// The raw value of an option, if the file sets it.
    pub fn raw(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .get(section)
            .and_then(|options| options.get(key))
            .map(String::as_str)
    }

    /// The value with `$option` references to `[DEFAULT]` expanded (`defaults` supplies
    /// values the file does not set, such as built-in defaults).
    pub fn expanded(
        &self,
        section: &str,
        key: &str,
        defaults: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Result<String, String>> {
        self.raw(section, key)
            .map(|value| self.expand(value, defaults, 0))
    }

    /// Expands `$name` and `${name}` against `[DEFAULT]`.
    pub fn expand(
        &self,
        value: &str,
        defaults: &dyn Fn(&str) -> Option<String>,
        depth: usize,
    ) -> Result<String, String> {
        if depth > 8 {
            return Err("option references nest too deeply (a reference loop?)".to_string());
        }
        let mut output = String::with_capacity(value.len());
        let mut chars = value.chars().peekable();
        while let Some(character) = chars.next() {
            if character != '$' {
                output.push(character);
                continue;
            }
            if chars.peek() == Some(&'$') {
                chars.next();
                output.push('$');
                continue;
            }
            let braced = chars.peek() == Some(&'{');
            if braced {
                chars.next();
            }
            let mut name = String::new();
            while let Some(next) = chars.peek().copied() {
                if next.is_ascii_alphanumeric() || next == '_' {
                    name.push(next);
                    chars.next();
                } else {
                    break;
                }
            }
            if braced && chars.next() != Some('}') {
                return Err(format!("unterminated reference ${{{name}"));
            }
            if name.is_empty() {
                output.push('$');
                continue;
            }
            let referenced = match self.raw("DEFAULT", &name) {
                Some(raw) => self.expand(raw, defaults, depth + 1)?,
                None => defaults(&name).ok_or_else(|| {
                    format!("references ${name}, which is not a [DEFAULT] option")
                })?,
            };
            output.push_str(&referenced);
        }
        Ok(output)
    }

    /// Every section and the options set in it.
    pub fn sections(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &str>)> {
        self.sections
            .iter()
            .map(|(name, options)| (name.as_str(), options.keys().map(String::as_str)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_options_comments_and_continuations() {
        let document = IniDocument::parse(
            "# comment\n[DEFAULT]\nstate_path = /var/lib/magnum\n\n[api]\nport: 9512\n; other\nhost =\n  10.0.0.1\n",
        )
        .unwrap();
        assert_eq!(
            document.raw("DEFAULT", "state_path"),
            Some("/var/lib/magnum")
        );
        assert_eq!(document.raw("api", "port"), Some("9512"));
        assert_eq!(document.raw("api", "host"), Some("10.0.0.1"));
        assert_eq!(document.raw("api", "missing"), None);
    }

    #[test]
    fn options_before_any_header_belong_to_default() {
        let document = IniDocument::parse("debug = true\n").unwrap();
        assert_eq!(document.raw("DEFAULT", "debug"), Some("true"));
    }

    #[test]
    fn reports_the_line_of_a_syntax_error() {
        let error = IniDocument::parse("[api]\nport 9511\n").unwrap_err();
        assert_eq!(error.line_number, 2);
        assert!(IniDocument::parse("[api\n").is_err());
    }

    #[test]
    fn expands_default_references() {
        let document = IniDocument::parse(
            "[DEFAULT]\nstate_path = /srv/m\n[database]\nconnection = sqlite:///${state_path}/m.db?x=$$1\n",
        )
        .unwrap();
        let no_defaults = |_: &str| None;
        assert_eq!(
            document
                .expanded("database", "connection", &no_defaults)
                .unwrap()
                .unwrap(),
            "sqlite:////srv/m/m.db?x=$1"
        );
        let with_builtin = |name: &str| (name == "host").then(|| "h1".to_string());
        assert_eq!(
            document.expand("$host:x", &with_builtin, 0).unwrap(),
            "h1:x"
        );
        assert!(document.expand("$nothing", &no_defaults, 0).is_err());
    }
}

//! Tables in the style python-magnumclient prints with prettytable: left-aligned cells, one
//! space of padding, `+`/`-`/`|` borders, a rule under the header.

use serde_json::Value;

/// Renders a value as python-magnumclient shows it: `-` for null, Python's spelling for
/// booleans, dicts and lists.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|item| format!("'{}'", python_str(item)))
                .collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(_) => python_repr(value),
    }
}

fn python_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "None".to_string(),
        other => cell(other),
    }
}

/// Python's `repr` of a JSON value (`{'a': 'b'}`), as `str(dict)` prints it.
pub fn python_repr(value: &Value) -> String {
    match value {
        Value::String(text) if text.contains('\'') && !text.contains('"') => format!("\"{text}\""),
        Value::String(text) => format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Null => "None".to_string(),
        Value::Bool(flag) => if *flag { "True" } else { "False" }.to_string(),
        Value::Number(number) => number.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(key, item)| format!("'{key}': {}", python_repr(item)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A table with a header and rows of already rendered cells.
pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (index, text) in row.iter().enumerate() {
            for line in text.split('\n') {
                if let Some(width) = widths.get_mut(index) {
                    *width = (*width).max(line.chars().count());
                }
            }
        }
    }
    let rule: String = {
        let mut line = String::from("+");
        for width in &widths {
            line.push_str(&"-".repeat(width + 2));
            line.push('+');
        }
        line
    };
    let format_row = |cells: &[String]| -> String {
        let n_lines = cells
            .iter()
            .map(|text| text.split('\n').count())
            .max()
            .unwrap_or(1);
        let mut lines = Vec::with_capacity(n_lines);
        for line_index in 0..n_lines {
            let mut line = String::from("|");
            for (index, width) in widths.iter().enumerate() {
                let text = cells
                    .get(index)
                    .and_then(|text| text.split('\n').nth(line_index))
                    .unwrap_or("");
                line.push(' ');
                line.push_str(text);
                line.push_str(&" ".repeat(width - text.chars().count()));
                line.push_str(" |");
            }
            lines.push(line);
        }
        lines.join("\n")
    };
    let mut output = vec![rule.clone(), format_row(header), rule.clone()];
    for row in rows {
        output.push(format_row(row));
    }
    output.push(rule);
    output.join("\n")
}

/// A resource as a two-column Property/Value table (`print_dict`), without its links.
pub fn print_dict(object: &Value) -> String {
    let header = ["Property".to_string(), "Value".to_string()];
    let rows: Vec<Vec<String>> = object
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.as_str() != "links")
        .map(|(key, value)| vec![key.clone(), cell(value)])
        .collect();
    render(&header, &rows)
}

/// Resources as a table with the given columns (`print_list`).
pub fn print_list(items: &[Value], columns: &[&str]) -> String {
    let header: Vec<String> = columns.iter().map(|column| column.to_string()).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|column| cell(&item[*column])).collect())
        .collect();
    render(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dict_tables_look_like_prettytable() {
        let text = print_dict(
            &json!({"name": "k8s", "labels": {"a": "b"}, "public": false,
                                      "keypair_id": null, "links": []}),
        );
        assert_eq!(
            text,
            "+------------+------------+\n\
             | Property   | Value      |\n\
             +------------+------------+\n\
             | keypair_id | -          |\n\
             | labels     | {'a': 'b'} |\n\
             | name       | k8s        |\n\
             | public     | False      |\n\
             +------------+------------+"
        );
    }

    #[test]
    fn empty_lists_keep_their_header() {
        assert_eq!(
            print_list(&[], &["uuid", "name"]),
            "+------+------+\n| uuid | name |\n+------+------+\n+------+------+"
        );
    }

    #[test]
    fn cells_use_python_spellings() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(true)), "True");
        assert_eq!(cell(&json!(7)), "7");
        assert_eq!(cell(&json!(["a", "b"])), "['a', 'b']");
        assert_eq!(cell(&json!({"k": "it's"})), "{'k': \"it's\"}");
        assert_eq!(cell(&json!({"k": "a'b\"c"})), "{'k': 'a\\'b\"c'}");
    }
}

//! Listing output as kubectl prints it: `-o table` (default; upper-case headers, columns padded
//! with three spaces), `-o wide` (more columns), `-o yaml`, `-o json`, and `--no-headers`.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Wide,
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, Default, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Leave out the header line of tables.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
}

impl OutputArgs {
    pub fn is_wide(&self) -> bool {
        self.format == Format::Wide
    }

    /// Whether the output is structured (yaml/json) rather than a table.
    pub fn is_structured(&self) -> bool {
        matches!(self.format, Format::Yaml | Format::Json)
    }

    /// Renders `value` as yaml/json; `None` for table formats (the caller builds the table).
    pub fn structured<T: Serialize>(&self, value: &T) -> anyhow::Result<Option<String>> {
        match self.format {
            Format::Json => to_json(value).map(Some),
            Format::Yaml => to_yaml(value).map(Some),
            Format::Table | Format::Wide => Ok(None),
        }
    }
}

/// Pretty JSON with a final newline.
pub fn to_json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value).context("cannot render JSON")?;
    text.push('\n');
    Ok(text)
}

pub fn to_yaml<T: Serialize>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_saphyr::to_string(value).context("cannot render YAML")?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// A table of text cells, rendered with columns aligned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Spaces between columns, as kubectl's printer pads.
const GAP: usize = 3;

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Table {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(row.into_iter().map(Into::into).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text; every line ends with a newline, no line has trailing spaces.
    pub fn render(&self, no_headers: bool) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let lines: Vec<&Vec<String>> = if no_headers {
            self.rows.iter().collect()
        } else {
            std::iter::once(&self.headers).chain(&self.rows).collect()
        };
        let mut widths = vec![0; columns];
        for line in &lines {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in lines {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                text.push_str(cell);
                if i + 1 < line.len() {
                    let pad = widths[i] - cell.chars().count() + GAP;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `<none>` for absent values, as kubectl prints them.
pub fn or_none(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "<none>".to_owned(), |v| v.to_string())
}

pub fn yes_no(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Table {
        let mut t = Table::new(["NAME", "CIDR", "PODS"]);
        t.push(["default-ipv4-ippool", "192.168.0.0/16", "12"]);
        t.push(["new", "10.0.0.0/8", "0"]);
        t
    }

    #[test]
    fn columns_are_aligned_with_three_spaces() {
        assert_eq!(
            table().render(false),
            "NAME                  CIDR             PODS\n\
             default-ipv4-ippool   192.168.0.0/16   12\n\
             new                   10.0.0.0/8       0\n"
        );
    }

    #[test]
    fn no_headers_drops_the_header_and_its_width() {
        assert_eq!(
            table().render(true),
            "default-ipv4-ippool   192.168.0.0/16   12\nnew                   10.0.0.0/8       0\n"
        );
    }

    #[test]
    fn empty_trailing_cells_leave_no_trailing_spaces() {
        let mut t = Table::new(["A", "B"]);
        t.push(["x", ""]);
        assert_eq!(t.render(false), "A   B\nx\n");
        assert!(Table::new(["A"]).is_empty());
    }

    #[test]
    fn structured_formats() {
        let value = json!({"name": "p", "blocks": 2});
        let json_out = OutputArgs {
            format: Format::Json,
            no_headers: false,
        };
        assert_eq!(
            json_out.structured(&value).unwrap().unwrap(),
            "{\n  \"blocks\": 2,\n  \"name\": \"p\"\n}\n"
        );
        let yaml_out = OutputArgs {
            format: Format::Yaml,
            no_headers: false,
        };
        let yaml = yaml_out.structured(&value).unwrap().unwrap();
        assert!(yaml.contains("name: p\n"), "{yaml}");
        assert!(yaml.contains("blocks: 2\n"), "{yaml}");
        assert!(OutputArgs::default().structured(&value).unwrap().is_none());
        assert_eq!(or_none(None::<&str>), "<none>");
        assert_eq!(or_none(Some(3)), "3");
    }
}

//! `kubectl ippool schema`: the IPPool JSON Schema for editors.

use super::Outcome;

pub fn run() -> anyhow::Result<Outcome> {
    let schema = ippool_rules::schema::json_schema();
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(Outcome::Clean)
}

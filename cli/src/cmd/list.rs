//! `mmf list`: the shared-memory channels on this host.

use serde_json::json;

use crate::args::ListArgs;
use crate::time::rfc3339;

pub fn run(a: ListArgs) -> anyhow::Result<()> {
    let listings = mmf::list()?;
    if a.json {
        let items: Vec<_> = listings
            .iter()
            .map(|l| match &l.info {
                Ok(i) => json!({
                    "name": l.name,
                    "capacity": i.capacity,
                    "size": i.size_bytes,
                    "generation": i.generation,
                    "codec": i.tag.to_string(),
                    "len": i.len,
                    "creator_pid": i.creator_pid,
                    "creator_alive": i.creator_alive,
                    "created": rfc3339(i.created),
                }),
                Err(e) => json!({ "name": l.name, "error": e.to_string() }),
            })
            .collect();
        return super::print_json(&serde_json::Value::Array(items), false);
    }
    let mut rows =
        vec![["NAME", "CAPACITY", "SIZE", "GENERATION", "VALUE", "CREATOR"].map(String::from)];
    for l in &listings {
        rows.push(match &l.info {
            Ok(i) => [
                l.name.clone(),
                i.capacity.to_string(),
                i.size_bytes.to_string(),
                i.generation.to_string(),
                if i.generation == 0 {
                    "-".into()
                } else {
                    format!("{} {}B", i.tag, i.len)
                },
                format!(
                    "{} ({})",
                    i.creator_pid,
                    if i.creator_alive { "running" } else { "exited" }
                ),
            ],
            Err(e) => [
                l.name.clone(),
                "?".into(),
                "?".into(),
                "?".into(),
                "?".into(),
                format!("unreadable: {e}"),
            ],
        });
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    super::print_bytes(text.as_bytes())
}

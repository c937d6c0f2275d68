//! Human sizes: `1024`, `64KiB`, `4MB`, `1k`.

/// Parses a size in bytes. Units: `B`; `KB`/`MB`/`GB` (powers of 1000); `KiB`/`MiB`/`GiB` and
/// the shorthands `K`/`M`/`G` (powers of 1024). Case-insensitive, an optional space before the
/// unit.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "size {text:?} does not start with a number (e.g. 1024, 64KiB, 4MB)"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size {text:?} is too large"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ if unit.starts_with(['.', ',']) => {
            return Err(format!(
                "size {text:?} is not a whole number; give bytes or a whole number of a unit \
                 (1536, 2KiB)"
            ))
        }
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?}; use B, KB, MB, GB (powers of 1000), \
                 KiB, MiB, GiB or K, M, G (powers of 1024)"
            ))
        }
    };
    n.checked_mul(mult)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Formats bytes for people: `1024 B (1.0 KiB)`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{bytes} B ({v:.1} {unit})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_and_unknown_units_say_what_is_accepted() {
        let e = parse_size("1.5K").unwrap_err();
        assert!(e.contains("not a whole number"), "{e}");
        let e = parse_size("3 parsecs").unwrap_err();
        assert!(
            e.contains("K, M, G (powers of 1024)") && e.contains("(powers of 1000)"),
            "{e}"
        );
    }

    #[test]
    fn sizes() {
        for (t, n) in [
            ("1024", 1024),
            ("64KiB", 65536),
            ("4MB", 4_000_000),
            ("1k", 1024),
            ("2 MiB", 2 << 20),
            ("1G", 1 << 30),
            ("7b", 7),
            // Every unit, each in another case.
            ("2KB", 2_000),
            ("3mb", 3_000_000),
            ("1Gb", 1_000_000_000),
            ("5KIB", 5 << 10),
            ("1mib", 1 << 20),
            ("2GiB", 2 << 30),
            ("3m", 3 << 20),
            ("9B", 9),
        ] {
            assert_eq!(parse_size(t), Ok(n), "{t}");
        }
        for bad in [
            "",
            "KiB",
            "12XB",
            "-1",
            "99999999999999999999",
            "18446744073709551615GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(1000), "1000 B");
        // At each unit's boundary, the larger unit.
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1024), "1024 B (1.0 KiB)");
        assert_eq!(format_size(1 << 20), "1048576 B (1.0 MiB)");
        assert_eq!(format_size(1 << 30), "1073741824 B (1.0 GiB)");
        assert_eq!(format_size(1536), "1536 B (1.5 KiB)");
        assert_eq!(format_size(3 << 20), "3145728 B (3.0 MiB)");
    }
}

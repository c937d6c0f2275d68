//! Durations on the command line: `500ms`, `5s`, `2m`, `1.5s`, `1h`, and sums of them written
//! together (`1m30s`, `1h 15m`); a bare number is seconds.

use std::time::Duration;

/// Parses a duration: one number with a unit (or none, for seconds), or several with their
/// units, added up.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXAMPLES: &str = "e.g. 500ms, 5s, 2m, 1m30s";
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("duration {text:?} is empty ({EXAMPLES})"));
    }
    // A bare number with an exponent, as programs print small or large floats (Python's
    // `str(3.2e-05)`, a harness passing what is left of its deadline): seconds. No sign, as
    // for any other duration.
    if t.starts_with(|c: char| c.is_ascii_digit() || c == '.') && t.contains(['e', 'E']) {
        let out_of_range = || format!("duration {text:?} is out of range");
        if let Ok(n) = t.parse::<f64>() {
            return Duration::try_from_secs_f64(n).map_err(|_| out_of_range());
        }
        // `1.5e3ms`: an exponent with a unit.
        let number = t.trim_end_matches(|c: char| c.is_alphabetic() || c == 'µ');
        if number.len() < t.len() && number.contains(['e', 'E']) && number.parse::<f64>().is_ok() {
            return Err(format!(
                "duration {text:?} has an exponent and a unit: an exponent is taken on a bare \
                 number of seconds only ({}), a unit on a plain number (1500ms, 1.5s)",
                number
            ));
        }
    }
    let mut rest = t;
    let mut secs = 0.0;
    let mut parts = 0;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(split);
        let n: f64 = number.parse().map_err(|_| {
            if !number.is_empty() {
                format!("duration {text:?} has a malformed number {number:?} ({EXAMPLES})")
            } else if parts == 0 {
                format!("duration {text:?} does not start with a number ({EXAMPLES})")
            } else {
                format!("duration {text:?} has no number before {after:?} ({EXAMPLES})")
            }
        })?;
        let after = after.trim_start();
        let end = after
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(end);
        let factor = match unit {
            // A bare number is seconds, where it is the whole duration.
            "" if parts == 0 && after.trim().is_empty() => 1.0,
            "" => {
                return Err(format!(
                    "duration {text:?} has a number without a unit; give each part its unit, \
                     as in 1m30s"
                ))
            }
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            // Days, for `prune --older-than` in a weekly cron job (a review's `1d`).
            "d" => 86400.0,
            other => {
                return Err(format!(
                    "unknown duration unit {other:?} in {text:?}; use us, ms, s, m, h or d, or \
                     several together as in 1m30s (a bare number is seconds)"
                ))
            }
        };
        secs += n * factor;
        parts += 1;
        rest = after.trim_start();
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration {text:?} is out of range"))
}

/// `d` as [`parse_duration`] reads it, in days, hours, minutes, seconds and milliseconds
/// (`1h`, `1m30s`, `1s500ms`, `250ms`, `7d`; `0ms` for zero; below a millisecond is left out).
pub fn show_duration(d: Duration) -> String {
    let (secs, ms) = (d.as_secs(), u64::from(d.subsec_millis()));
    if secs == 0 && ms == 0 {
        return "0ms".into();
    }
    [
        (secs / 86400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (ms, "ms"),
    ]
    .into_iter()
    .filter(|&(n, _)| n > 0)
    .map(|(n, unit)| format!("{n}{unit}"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_shown_as_they_are_read() {
        for (d, shown) in [
            (Duration::ZERO, "0ms"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(45), "45s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(3600 * 30 + 61), "1d6h1m1s"),
            (Duration::from_millis(2500), "2s500ms"),
        ] {
            assert_eq!(show_duration(d), shown);
            assert_eq!(parse_duration(shown), Ok(d));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(show_duration(Duration::from_secs(36 * 3600)), "1d12h");
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("1e400s").is_err());
        // Exponents, as programs print floats: a bare number is seconds in any such form.
        assert_eq!(
            parse_duration("3.2e-05"),
            Ok(Duration::from_secs_f64(3.2e-05))
        );
        assert_eq!(parse_duration("1E+2"), Ok(Duration::from_secs(100)));
        assert_eq!(parse_duration("0e0"), Ok(Duration::ZERO));
        for (refused, said) in [
            ("1e400", "is out of range"),
            ("1e20", "is out of range"),
            ("-1e-05", "does not start with a number"),
            ("+1e3", "does not start with a number"),
            (
                "1e-3s",
                "an exponent is taken on a bare number of seconds only (1e-3)",
            ),
            ("1.5e3ms", "has an exponent and a unit"),
            ("1e", "unknown duration unit \"e\""),
            ("inf", "does not start with a number"),
            ("NaN", "does not start with a number"),
        ] {
            let err = parse_duration(refused).unwrap_err();
            assert!(err.contains(said), "{refused}: {err}");
        }
        // Sums, as `sleep` and systemd write them.
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 15m"), Ok(Duration::from_secs(4500)));
        assert_eq!(parse_duration("2s500ms"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration(" 1.5 s "), Ok(Duration::from_millis(1500)));
        for (text, said) in [
            ("", "is empty"),
            ("1m30", "a number without a unit"),
            ("30 1m", "a number without a unit"),
            ("1mm", "unknown duration unit \"mm\""),
            ("1m,30s", "has no number before \",30s\""),
            ("-5s", "does not start with a number"),
            ("1..5s", "has a malformed number \"1..5\""),
            ("1.5.s", "has a malformed number \"1.5.\""),
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(said), "{text:?}: {err}");
        }
    }
}

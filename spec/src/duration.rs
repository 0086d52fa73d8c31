//! The duration grammar of `every`, `initial_delay` and `jitter`: one or more
//! `<integer><unit>` pairs with units `ms`, `s`, `m`, `h` and `d`, as in
//! `"1m30s"`.
//!
//! Written here rather than taken from a crate such as `humantime`, which
//! accepts many more spellings (`"2 hours"`, `"1min"`, fractions): one
//! strict grammar, the same in attributes and in configuration, whose errors
//! name exactly the valid units.

/// Parses `text` into milliseconds.
///
/// # Errors
///
/// A message in rustc's voice naming the valid units.
pub fn parse_millis(text: &str) -> Result<u64, String> {
    const HINT: &str = "write integers with units `ms`, `s`, `m`, `h` or `d`, e.g. `\"1m30s\"`";
    if text.trim().is_empty() {
        return Err(format!("empty duration; {HINT}"));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration `{text}`; {HINT}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration `{text}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("missing unit after `{number}` in `{text}`; {HINT}")),
            other => return Err(format!("unknown unit `{other}` in `{text}`; {HINT}")),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(scale)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("duration `{text}` is too large"))?;
    }
    Ok(total)
}

/// Parses a backoff range, `"1s..5m"`, into its first and longest delay in
/// milliseconds.
///
/// # Errors
///
/// A malformed range, a bad duration, a zero first delay, or a first delay
/// longer than the last.
pub fn parse_backoff(text: &str) -> Result<(u64, u64), String> {
    let Some((min, max)) = text.split_once("..") else {
        return Err(format!(
            "invalid backoff `{text}`; write the first and the longest delay as `\"1s..5m\"`"
        ));
    };
    let min = parse_millis(min).map_err(|e| format!("in backoff `{text}`: {e}"))?;
    let max = parse_millis(max).map_err(|e| format!("in backoff `{text}`: {e}"))?;
    if min == 0 || min > max {
        return Err(format!(
            "invalid backoff `{text}`: the first delay must be above zero and at most the longest, e.g. `\"1s..5m\"`"
        ));
    }
    Ok((min, max))
}

#[cfg(test)]
mod tests {
    use super::{parse_backoff, parse_millis};

    #[test]
    fn accepts_sequences_of_integer_and_unit() {
        assert_eq!(parse_millis("250ms"), Ok(250));
        assert_eq!(parse_millis("5s"), Ok(5_000));
        assert_eq!(parse_millis("1m30s"), Ok(90_000));
        assert_eq!(parse_millis("2h"), Ok(7_200_000));
        assert_eq!(parse_millis("1d1h1m1s1ms"), Ok(90_061_001));
        assert_eq!(parse_millis("0s"), Ok(0));
    }

    #[test]
    fn rejects_anything_else_with_the_valid_units() {
        for bad in [
            "",
            " ",
            "5",
            "s",
            "5 s",
            "1.5s",
            "5sec",
            "5S",
            "-5s",
            "5s ",
            "99999999999999999999s",
        ] {
            let err = parse_millis(bad).unwrap_err();
            assert!(
                err.contains("`ms`, `s`, `m`, `h` or `d`") || err.contains("too large"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn backoff_ranges() {
        assert_eq!(parse_backoff("1s..5m"), Ok((1_000, 300_000)));
        assert_eq!(parse_backoff("500ms..500ms"), Ok((500, 500)));
        for bad in ["1s", "5m..1s", "0s..1s", "1s..", "..1s", "1x..2s"] {
            assert!(parse_backoff(bad).is_err(), "{bad}");
        }
    }
}

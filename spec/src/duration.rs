//! The duration grammar of `every`, `initial_delay` and `jitter`: one or more
//! `<integer><unit>` pairs with units `ms`, `s`, `m`, `h` and `d`, as in
//! `"1m30s"`.
//!
//! Written here rather than taken from a crate such as `humantime`, which
//! accepts many more spellings (`"2 hours"`, `"1min"`, fractions): one
//! strict grammar, the same in attributes and in configuration, whose errors
//! name exactly the valid units.

use crate::error::{Grammar, ParseError};

/// Parses `text` into milliseconds.
///
/// # Errors
///
/// A message in rustc's voice naming the valid units.
pub fn parse_millis(text: &str) -> Result<u64, ParseError> {
    millis(text).map_err(|message| ParseError::new(Grammar::Duration, message))
}

fn millis(text: &str) -> Result<u64, String> {
    const HINT: &str = "write integers with units `ms`, `s`, `m`, `h` or `d`, e.g. `\"1m30s\"`";
    if text.trim().is_empty() {
        return Err(format!("empty duration; {HINT}"));
    }
    // The grammar's own words, for an error that offers the spelling to
    // write instead when there is exactly one.
    let refuse = |reason: String, fix: Option<String>| match fix {
        Some(fix) => Err(format!(
            "{reason}: write `{fix}` (integers with units `ms`, `s`, `m`, `h` or `d`)"
        )),
        None => Err(format!("{reason}; {HINT}")),
    };
    if let Some(at) = text.find(['.', ',']) {
        return refuse(
            format!("`{text}`: fractions are not part of the duration grammar"),
            fraction_fix(&text[..at], &text[at + 1..]),
        );
    }
    if text.contains(char::is_whitespace) {
        // `1 min 30 sec` is `1m30s`.
        let joined: String = text
            .split_whitespace()
            .flat_map(split_units)
            .map(|part| spelled(part).unwrap_or(part))
            .collect();
        let fix = millis(&joined).is_ok().then_some(joined);
        return refuse(
            format!("`{text}`: spaces are not part of the duration grammar"),
            fix,
        );
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
            other => {
                let fix = match spelled(other) {
                    Some(unit) => format!("for `{other}` write `{unit}`; "),
                    None if matches!(other, "us" | "µs" | "ns") => {
                        "the smallest unit is `ms`; ".to_owned()
                    }
                    None => String::new(),
                };
                return Err(format!("unknown unit `{other}` in `{text}`; {fix}{HINT}"));
            }
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(scale)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("duration `{text}` is too large"))?;
    }
    Ok(total)
}

/// The grammar's unit for a unit spelled out (`sec`, `minutes`).
fn spelled(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        "ms" | "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => "ms",
        _ => return None,
    })
}

/// `30sec` as `30` and `sec`; any other word whole.
fn split_units(word: &str) -> Vec<&str> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits == word.len() {
        vec![word]
    } else {
        vec![&word[..digits], &word[digits..]]
    }
}

/// What to write instead of `whole.fraction<unit>`, when there is one
/// exact answer: `1.5s` is `1s500ms`, `2.5m` is `2m30s`.
fn fraction_fix(whole: &str, fraction: &str) -> Option<String> {
    let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
    let unit = &fraction[digits..];
    let scale: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    let (Ok(whole), Ok(part)) = (whole.parse::<u64>(), fraction[..digits].parse::<u64>()) else {
        return None;
    };
    let denominator = 10_u64.checked_pow(u32::try_from(digits).ok()?)?;
    let part_ms = part.checked_mul(scale)?;
    if part_ms % denominator != 0 {
        return None;
    }
    let total = whole
        .checked_mul(scale)?
        .checked_add(part_ms / denominator)?;
    let mut fix = String::new();
    let mut left = total;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if left >= size {
            fix.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    Some(fix)
}

/// Parses a backoff range, `"1s..5m"`, into its first and longest delay in
/// milliseconds.
///
/// # Errors
///
/// A malformed range, a bad duration, a zero first delay, or a first delay
/// longer than the last.
pub fn parse_backoff(text: &str) -> Result<(u64, u64), ParseError> {
    backoff(text).map_err(|message| ParseError::new(Grammar::Backoff, message))
}

fn backoff(text: &str) -> Result<(u64, u64), String> {
    let Some((min, max)) = text.split_once("..") else {
        return Err(format!(
            "invalid backoff `{text}`; write the first and the longest delay as `\"1s..5m\"`"
        ));
    };
    let min = millis(min).map_err(|e| format!("in backoff `{text}`: {e}"))?;
    let max = millis(max).map_err(|e| format!("in backoff `{text}`: {e}"))?;
    if min == 0 || min > max {
        return Err(format!(
            "invalid backoff `{text}`: the first delay must be above zero and at most the longest, e.g. `\"1s..5m\"`"
        ));
    }
    Ok((min, max))
}

#[cfg(test)]
mod tests {
    use super::{backoff, millis};

    #[test]
    fn a_fraction_is_refused_with_the_exact_spelling_when_there_is_one() {
        let error = millis("1.5s").unwrap_err();
        assert!(
            error.contains("fractions are not part of the duration grammar"),
            "{error}"
        );
        assert!(error.contains(": write `1s500ms`"), "{error}");
        assert!(millis("2.5m").unwrap_err().contains("write `2m30s`"));
        assert!(millis("0.25h").unwrap_err().contains("write `15m`"));
        // No exact spelling in whole milliseconds: the reason alone.
        let error = millis("1.5ms").unwrap_err();
        assert!(error.contains("fractions are not part"), "{error}");
        assert!(!error.contains("write `"), "{error}");
    }

    #[test]
    fn spaces_and_spelled_out_units_are_refused_with_the_fix() {
        let error = millis("5 s").unwrap_err();
        assert!(
            error.contains("spaces are not part of the duration grammar"),
            "{error}"
        );
        assert!(error.contains("write `5s`"), "{error}");
        let error = millis("1 min 30 sec").unwrap_err();
        assert!(error.contains("write `1m30s`"), "{error}");
        let error = millis("5 seconds").unwrap_err();
        assert!(error.contains("write `5s`"), "{error}");
        let error = millis("5sec").unwrap_err();
        assert!(error.contains("for `sec` write `s`"), "{error}");
        let error = millis("10minutes").unwrap_err();
        assert!(error.contains("for `minutes` write `m`"), "{error}");
        let error = millis("500us").unwrap_err();
        assert!(error.contains("the smallest unit is `ms`"), "{error}");
    }

    #[test]
    fn accepts_sequences_of_integer_and_unit() {
        assert_eq!(millis("250ms"), Ok(250));
        assert_eq!(millis("5s"), Ok(5_000));
        assert_eq!(millis("1m30s"), Ok(90_000));
        assert_eq!(millis("2h"), Ok(7_200_000));
        assert_eq!(millis("1d1h1m1s1ms"), Ok(90_061_001));
        assert_eq!(millis("0s"), Ok(0));
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
            let err = millis(bad).unwrap_err();
            assert!(
                err.contains("`ms`, `s`, `m`, `h` or `d`") || err.contains("too large"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn backoff_ranges() {
        assert_eq!(backoff("1s..5m"), Ok((1_000, 300_000)));
        assert_eq!(backoff("500ms..500ms"), Ok((500, 500)));
        for bad in ["1s", "5m..1s", "0s..1s", "1s..", "..1s", "1x..2s"] {
            assert!(backoff(bad).is_err(), "{bad}");
        }
    }
}

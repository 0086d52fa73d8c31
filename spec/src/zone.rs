//! Time zones: IANA names through `chrono-tz`, plus `"UTC"` and `"local"`.

use crate::error::{Grammar, ParseError};

use std::fmt;
use std::str::FromStr;

/// The time zone a cron line is read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// UTC, the default.
    Utc,
    /// The machine's zone, as `chrono::Local` reads it.
    Local,
    /// An IANA zone.
    Named(chrono_tz::Tz),
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Utc => f.write_str("UTC"),
            Zone::Local => f.write_str("local"),
            Zone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

/// Parses a zone name: an IANA name (`"Europe/Berlin"`), `"UTC"`, or
/// `"local"`.
///
/// # Errors
///
/// An unknown name; the message suggests the right spelling of a name that
/// differs only in case.
pub fn parse_zone(text: &str) -> Result<Zone, ParseError> {
    zone(text).map_err(|message| ParseError::new(Grammar::Zone, message))
}

fn zone(name: &str) -> Result<Zone, String> {
    match name {
        "UTC" | "utc" | "Etc/UTC" => return Ok(Zone::Utc),
        "local" => return Ok(Zone::Local),
        _ => {}
    }
    chrono_tz::Tz::from_str(name).map(Zone::Named).map_err(|_| {
        let hint = match chrono_tz::Tz::from_str_insensitive(name) {
            Ok(tz) => format!("did you mean `{}`?", tz.name()),
            Err(_) => match nearest(name).as_slice() {
                [] => "use an IANA name such as `\"Europe/Berlin\"`, `\"UTC\"`, or `\"local\"` for the machine's zone".into(),
                [one] => format!("did you mean `{one}`?"),
                several => format!(
                    "did you mean one of {}?",
                    several.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            },
        };
        format!("unknown time zone `{name}`; {hint}")
    })
}

/// The IANA names closest to `name` (a typo, or a city without its
/// region): at most three, within an edit distance that grows with the
/// name's length, nearest first.
fn nearest(name: &str) -> Vec<&'static str> {
    let wanted = name.to_ascii_lowercase();
    let bound = (wanted.len() / 4).clamp(1, 3);
    let mut found: Vec<(usize, &'static str)> = chrono_tz::TZ_VARIANTS
        .iter()
        .filter_map(|tz| {
            let full = tz.name();
            let lower = full.to_ascii_lowercase();
            let mut distance = strsim::damerau_levenshtein(&wanted, &lower);
            if !wanted.contains('/') {
                if let Some((_, city)) = lower.rsplit_once('/') {
                    distance = distance.min(strsim::damerau_levenshtein(&wanted, city));
                }
            }
            (distance <= bound).then_some((distance, full))
        })
        .collect();
    found.sort();
    found.into_iter().take(3).map(|(_, name)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(zone("UTC"), Ok(Zone::Utc));
        assert_eq!(zone("local"), Ok(Zone::Local));
        assert_eq!(
            zone("Europe/Berlin"),
            Ok(Zone::Named(chrono_tz::Europe::Berlin))
        );
        assert!(zone("europe/berlin")
            .unwrap_err()
            .contains("did you mean `Europe/Berlin`?"));
        assert!(zone("Mars/Olympus_Mons").unwrap_err().contains("IANA name"));
    }

    #[test]
    fn a_typo_gets_the_nearest_iana_names() {
        let error = zone("America/New_Yrok").unwrap_err();
        assert!(
            error.contains("did you mean `America/New_York`?"),
            "{error}"
        );
        let error = zone("Europe/Berlni").unwrap_err();
        assert!(error.contains("`Europe/Berlin`"), "{error}");
        // A city without its region.
        let error = zone("Berlin").unwrap_err();
        assert!(error.contains("`Europe/Berlin`"), "{error}");
    }
}

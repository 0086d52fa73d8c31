//! Cron lines, parsed by `croner`, with errors that name the bad field.

use chrono::TimeZone as _;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// Parses a cron line with the settings `hosted` uses everywhere: 5 fields,
/// or 6 with seconds first, or an alias; no year field; Vixie semantics.
/// Rejects lines that can never fire. Errors name the offending field.
///
/// # Errors
///
/// A message in rustc's voice: the bad field and what it accepts, a wrong
/// number of fields, an unknown alias, `@reboot`, or a line that never
/// fires.
pub fn parse_cron(line: &str) -> Result<Cron, String> {
    const FORMS: &str = "write 5 fields (minute, hour, day of month, month, day of week), \
         6 with seconds first, or an alias such as `@hourly`";
    let trimmed = line.trim();
    if trimmed.eq_ignore_ascii_case("@reboot") {
        return Err(
            "`@reboot` is not a schedule; use `#[hosted_service]` for work that starts with the host"
                .into(),
        );
    }
    if trimmed.starts_with('@') {
        return parse(trimmed).map_err(|_| {
            format!("unknown cron alias `{trimmed}`; use `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily` or `@hourly`")
        });
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    let names: &[(&str, &str)] = match fields.len() {
        5 => &CRON_FIELDS[1..],
        6 => &CRON_FIELDS,
        n => return Err(format!("cron line `{line}` has {n} field(s); {FORMS}")),
    };
    let cron = parse(trimmed).map_err(|error| {
        // The culprit is the first field whose replacement by `*` parses.
        let culprit = (0..fields.len()).find(|&i| {
            let mut fixed = fields.clone();
            fixed[i] = "*";
            parse(&fixed.join(" ")).is_ok()
        });
        match culprit {
            Some(i) => format!(
                "invalid {} field `{}` in cron line `{line}`; {}",
                names[i].0, fields[i], names[i].1
            ),
            None => format!(
                "invalid cron line `{line}` ({}); {FORMS}",
                lowercase_message(&error)
            ),
        }
    })?;
    // A leap day is the rarest real date, so a line that fires at all fires
    // within the eight years from 2000 (a leap year) on.
    let Some(start) = chrono::Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single() else {
        return Ok(cron);
    };
    let mut from = start;
    for _ in 0..8 {
        match cron.find_next_occurrence(&from, true) {
            Ok(_) => return Ok(cron),
            Err(_) => from += chrono::Duration::days(366),
        }
    }
    Err(format!(
        "cron line `{line}` never fires: no month has that day; check the day-of-month and month fields"
    ))
}

/// Each field's name and what it accepts, seconds first.
const CRON_FIELDS: [(&str, &str); 6] = [
    (
        "second",
        "use 0-59, `*`, lists (`0,30`), ranges (`0-10`) or steps (`*/15`)",
    ),
    (
        "minute",
        "use 0-59, `*`, lists (`0,30`), ranges (`0-10`) or steps (`*/15`)",
    ),
    ("hour", "use 0-23, `*`, lists, ranges or steps"),
    (
        "day-of-month",
        "use 1-31, `*`, `L` (last day), lists, ranges or steps",
    ),
    (
        "month",
        "use 1-12 or `JAN`-`DEC`, `*`, lists, ranges or steps",
    ),
    (
        "day-of-week",
        "use 0-7 (0 and 7 are Sunday, 1 is Monday) or `SUN`-`SAT`, `*`, lists, ranges or steps",
    ),
];

fn parse(line: &str) -> Result<Cron, croner::errors::CronError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(line)
}

/// croner's message in rustc's voice: lowercase, no final period.
fn lowercase_message(error: &croner::errors::CronError) -> String {
    let text = error.to_string();
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::parse_cron;

    #[test]
    fn accepts_five_and_six_fields_and_aliases() {
        for line in [
            "*/5 * * * *",
            "0 30 9 * * 1-5",
            "@hourly",
            "@weekly",
            "0 0 13 * 5",
        ] {
            assert!(parse_cron(line).is_ok(), "{line}");
        }
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            ("61 * * * *", "invalid minute field `61`"),
            ("* 24 * * *", "invalid hour field `24`"),
            ("0 0 * * MON-FUN", "invalid day-of-week field `MON-FUN`"),
            ("* * *", "has 3 field(s)"),
            ("@fortnightly", "unknown cron alias"),
            ("@reboot", "`@reboot` is not a schedule"),
            ("0 0 31 2 *", "never fires"),
        ];
        for (line, expected) in cases {
            let error = parse_cron(line).unwrap_err();
            assert!(error.contains(expected), "{line}: {error}");
        }
    }
}

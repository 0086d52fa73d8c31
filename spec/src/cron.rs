//! Cron lines: checked field by field here, then handed to `croner` to find
//! matching times. Each field is read by this module's own small grammar
//! first, so every line is accepted or rejected at once, with the bad field
//! named, before anything is evaluated: no line, however odd, makes the
//! check search the calendar.
//!
//! Two decisions that `croner` makes differently are taken here, after Vixie
//! cron and cronie:
//! - **The day rule.** The day-of-month and day-of-week fields are combined
//!   with AND when either of them begins with `*` (so `*/2` counts as
//!   unrestricted), and with OR only when both are restricted.
//! - **Fixed-time or wildcard**, which decides how daylight saving time
//!   treats the line (the runtime applies it): a line is *fixed-time* when
//!   none of its second (6 fields), minute and hour fields begins with `*`.

use crate::error::{Grammar, ParseError};

use croner::parser::{CronParser, Seconds, Year};
use croner::time::Weekday;
use croner::Cron;

/// A checked cron line: `croner`'s parsed pattern, and whether the line is
/// fixed-time in cronie's sense (see the module docs).
#[derive(Clone, Debug)]
pub struct CronLine {
    cron: Cron,
    fixed_time: bool,
}

impl CronLine {
    /// The parsed pattern, with the day rule already applied.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }

    /// Whether none of the second, minute and hour fields begins with `*`:
    /// cronie runs such a line's times once each across a daylight saving
    /// change (a time in the spring gap right after the jump, a time in the
    /// repeated autumn hour once), where a wildcard line follows real time.
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }
}

const FORMS: &str = "write 5 fields (minute, hour, day of month, month, day of week), \
     6 with seconds first, or an alias such as `@hourly`";

/// Parses a cron line with the settings `hosted` uses everywhere: 5 fields,
/// or 6 with seconds first, or an alias; no year field; Vixie semantics.
/// Rejects lines that can never fire. Errors name the offending field.
///
/// The work is bounded by the line's length: each field is read once, and
/// "never fires" is decided by checking each day of one month of every
/// length and starting weekday the line's months can have (at most 2,604
/// days), never by searching the calendar.
///
/// # Errors
///
/// A message in rustc's voice: the bad field and what it accepts, a wrong
/// number of fields, an unknown alias, `@reboot`, or a line that never
/// fires.
pub fn parse_cron(text: &str) -> Result<CronLine, ParseError> {
    cron_line(text).map_err(|message| ParseError::new(Grammar::Cron, message))
}

fn cron_line(line: &str) -> Result<CronLine, String> {
    let trimmed = line.trim();
    let expanded = match alias(trimmed)? {
        Some(expanded) => expanded,
        None => trimmed,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let kinds: &[Field] = match fields.len() {
        5 => &FIELDS[1..],
        6 => &FIELDS,
        n => return Err(format!("cron line `{line}` has {n} field(s); {FORMS}")),
    };
    let mut normalized = Vec::with_capacity(fields.len());
    for (field, kind) in fields.iter().zip(kinds) {
        normalized.push(kind.check(field, line)?);
    }
    let day_of_month = fields[fields.len() - 3];
    let day_of_week = fields[fields.len() - 1];
    let unrestricted = |field: &str| field.starts_with('*') || field.starts_with('?');
    // Vixie's rule; `+` is croner's own way to ask for AND.
    let dom_and_dow =
        unrestricted(day_of_month) || unrestricted(day_of_week) || day_of_week.starts_with('+');
    let fixed_time = fields[..fields.len() - 3]
        .iter()
        .all(|field| !field.starts_with('*'));
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .dom_and_dow(dom_and_dow)
        .build()
        .parse(&normalized.join(" "))
        .map_err(|error| {
            format!(
                "invalid cron line `{line}` ({}); {FORMS}",
                lowercase_message(&error)
            )
        })?;
    if !fires_some_day(&cron, &mut 0) {
        let why = if unrestricted(day_of_week) {
            "no month has that day; check the day-of-month and month fields"
        } else {
            "no day of the months it names matches both the day-of-month and the day-of-week field; check those fields"
        };
        return Err(format!("cron line `{line}` never fires: {why}"));
    }
    Ok(CronLine { cron, fixed_time })
}

/// The line an alias stands for; `None` if `line` is no alias.
fn alias(line: &str) -> Result<Option<&'static str>, String> {
    if !line.starts_with('@') {
        return Ok(None);
    }
    const ALIASES: [(&str, &str); 7] = [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ];
    if line.eq_ignore_ascii_case("@reboot") {
        return Err(
            "`@reboot` is not a schedule; use `#[hosted_service]` for work that starts with the host"
                .into(),
        );
    }
    match ALIASES.iter().find(|(name, _)| line.eq_ignore_ascii_case(name)) {
        Some((_, expanded)) => Ok(Some(expanded)),
        None => Err(format!(
            "unknown cron alias `{line}`; use `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight` or `@hourly`"
        )),
    }
}

/// Whether some day of some month the pattern names matches its day fields.
/// A month's matching days depend only on its length and on the weekday it
/// starts on (croner's `L`, `W` and `#` included), so one month of each
/// length and starting weekday decides it: the calendar has them all.
/// `checks` counts the days looked at (at most [`MAX_DAY_CHECKS`]).
fn fires_some_day(cron: &Cron, checks: &mut u32) -> bool {
    let pattern = &cron.pattern;
    (1..=12_u32)
        .filter(|&month| pattern.month_match(month).unwrap_or(false))
        .any(|month| {
            // 2001 is a common year, 2004 a leap year: croner reads the
            // month's length from the year, the weekday from its argument.
            let years: &[i32] = if month == 2 { &[2001, 2004] } else { &[2001] };
            years.iter().any(|&year| {
                let length = days_in_month(year, month);
                (0..7).any(|first| {
                    (1..=length).any(|day| {
                        *checks += 1;
                        let weekday = WEEKDAYS[((first + day - 1) % 7) as usize];
                        pattern
                            .day_match(year, month, day, weekday)
                            .unwrap_or(false)
                    })
                })
            })
        })
}

/// 11 months of at most 31 days, and February as 28 and 29 days, each
/// starting on any of 7 weekdays.
#[cfg(test)]
const MAX_DAY_CHECKS: u32 = 7 * (11 * 31 + 28 + 29);

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Sunday,
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
];

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// What a field accepts beyond numbers, ranges, steps and `*`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Extra {
    None,
    /// `?`, `L`, `LW`, `15W`.
    DayOfMonth,
    /// `?`, `5L`, `1#2`, a leading `+`, `SUN`-`SAT`.
    DayOfWeek,
    /// `JAN`-`DEC`.
    Month,
}

/// One field of a cron line: its name, its range, and what it accepts.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    extra: Extra,
    accepts: &'static str,
}

/// Each field, seconds first.
const FIELDS: [Field; 6] = [
    Field {
        name: "second",
        min: 0,
        max: 59,
        extra: Extra::None,
        accepts: "use 0-59, `*`, lists (`0,30`), ranges (`0-10`) or steps (`*/15`)",
    },
    Field {
        name: "minute",
        min: 0,
        max: 59,
        extra: Extra::None,
        accepts: "use 0-59, `*`, lists (`0,30`), ranges (`0-10`) or steps (`*/15`)",
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        extra: Extra::None,
        accepts: "use 0-23, `*`, lists, ranges or steps",
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        extra: Extra::DayOfMonth,
        accepts: "use 1-31, `*`, `L` (last day), `15W` (nearest weekday), lists, ranges or steps",
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        extra: Extra::Month,
        accepts: "use 1-12 or `JAN`-`DEC`, `*`, lists, ranges or steps",
    },
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
        extra: Extra::DayOfWeek,
        accepts:
            "use 0-7 (0 and 7 are Sunday, 1 is Monday) or `SUN`-`SAT`, `*`, lists, ranges or steps",
    },
];

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Field {
    /// Checks `text` and returns it as croner reads it (names as numbers).
    fn check(&self, text: &str, line: &str) -> Result<String, String> {
        let invalid = |hint: &str| {
            format!(
                "invalid {} field `{text}` in cron line `{line}`: {hint}; {}",
                self.name, self.accepts
            )
        };
        let mut body = text;
        let mut out = String::with_capacity(text.len());
        if self.extra == Extra::DayOfWeek {
            if let Some(rest) = text.strip_prefix('+') {
                if rest.is_empty() {
                    return Err(invalid("`+` must be followed by weekdays, as in `+1-5`"));
                }
                body = rest;
                out.push('+');
            }
        }
        let in_list = body.contains(',');
        for (n, item) in body.split(',').enumerate() {
            if item.is_empty() {
                return Err(invalid("an empty list item (remove the stray comma)"));
            }
            if n > 0 {
                out.push(',');
            }
            self.check_item(item, in_list, &mut out)
                .map_err(|hint| invalid(&hint))?;
        }
        Ok(out)
    }

    /// One item of a list: `*`, `*/n`, `a`, `a-b`, `a-b/n`, or one of the
    /// field's extras. As cronie reads them: a step longer than its range
    /// takes the range's first value alone (`*/90` in the minutes is minute
    /// 0), and `*` in a list is the whole range (`1,*`), written out for
    /// croner, which takes `*` only alone.
    fn check_item(&self, item: &str, in_list: bool, out: &mut String) -> Result<(), String> {
        let upper = item.to_ascii_uppercase();
        let item = upper.as_str();
        let day_field = matches!(self.extra, Extra::DayOfMonth | Extra::DayOfWeek);
        if item == "?" && day_field {
            out.push('*');
            return Ok(());
        }
        match self.extra {
            Extra::DayOfMonth if item == "L" || item == "LW" => {
                out.push_str(item);
                return Ok(());
            }
            Extra::DayOfMonth if item.ends_with('W') => {
                let day = self.value(&item[..item.len() - 1])?;
                out.push_str(&format!("{day}W"));
                return Ok(());
            }
            Extra::DayOfWeek if item == "L" => {
                return Err(
                    "a bare `L` is no weekday (write `5L` for the last Friday of the month, or `L` in the day-of-month field for its last day)"
                        .to_owned(),
                );
            }
            Extra::DayOfWeek if item.ends_with('L') => {
                let day = self.value(&item[..item.len() - 1])?;
                out.push_str(&format!("{day}L"));
                return Ok(());
            }
            Extra::DayOfWeek if item.contains('#') => {
                let (day, nth) = item.split_once('#').unwrap_or((item, ""));
                let day = self.value(day)?;
                match nth.parse::<u32>() {
                    Ok(nth @ 1..=5) => out.push_str(&format!("{day}#{nth}")),
                    _ => {
                        return Err(format!(
                            "`#{nth}`: the occurrence after `#` is 1 to 5, as in `1#2` for the second Monday"
                        ))
                    }
                }
                return Ok(());
            }
            _ => {}
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let step = match step.map(str::parse::<u32>) {
            None => None,
            Some(Ok(step)) if step >= 1 => Some(step),
            Some(_) => {
                return Err(format!(
                    "the step `/{}` is not a whole number of at least 1",
                    step.unwrap_or_default()
                ))
            }
        };
        let (low, high) = if range == "*" {
            // Sunday is 0 and 7: the whole week is 0-6.
            let top = if self.extra == Extra::DayOfWeek {
                6
            } else {
                self.max
            };
            (self.min, top)
        } else {
            match range.split_once('-') {
                Some((low, high)) => {
                    let low = self.value(low)?;
                    let mut high = self.value(high)?;
                    if self.extra == Extra::DayOfWeek && high == 0 && low > 0 {
                        // `MON-SUN`: Sunday as 7 ends a range (croner's
                        // reading, kept); `SUN-SUN` and `0-SUN` stay
                        // Sunday alone.
                        high = 7;
                    }
                    if low > high {
                        return Err(format!(
                            "the range `{range}` runs backwards; write it from low to high, or as a list"
                        ));
                    }
                    (low, high)
                }
                None if step.is_some() => {
                    return Err(format!(
                        "a step needs a range or `*`: write `{range}-{}/{}` or `*/{}`",
                        self.max,
                        step.unwrap_or_default(),
                        step.unwrap_or_default()
                    ));
                }
                None => {
                    out.push_str(&self.value(range)?.to_string());
                    return Ok(());
                }
            }
        };
        match step {
            // Longer than the range: its first value alone.
            Some(step) if step > high - low => out.push_str(&low.to_string()),
            Some(step) if range == "*" && !in_list => out.push_str(&format!("*/{step}")),
            Some(step) => out.push_str(&format!("{low}-{high}/{step}")),
            None if range == "*" && !in_list => out.push('*'),
            None => out.push_str(&format!("{low}-{high}")),
        }
        Ok(())
    }

    /// A number or name in the field's range.
    fn value(&self, text: &str) -> Result<u32, String> {
        let names: &[&str] = match self.extra {
            Extra::Month => &MONTHS,
            Extra::DayOfWeek => &DAYS,
            Extra::None | Extra::DayOfMonth => &[],
        };
        if let Some(index) = names.iter().position(|name| *name == text) {
            let offset = u32::from(self.extra == Extra::Month);
            return Ok(index as u32 + offset);
        }
        if text.is_empty() {
            return Err("a value is missing".to_owned());
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{text}` is not a {} value", self.name));
        }
        match text.parse::<u32>() {
            Ok(value) if (self.min..=self.max).contains(&value) => Ok(value),
            _ => Err(format!("`{text}` is outside {}-{}", self.min, self.max)),
        }
    }
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
    use super::cron_line;
    use chrono::{DateTime, Utc};

    #[test]
    fn accepts_five_and_six_fields_and_aliases() {
        for line in [
            "*/5 * * * *",
            "0 30 9 * * 1-5",
            "@hourly",
            "@weekly",
            "@midnight",
            "0 0 13 * 5",
            "0 0 L * *",
            "0 0 LW * *",
            "0 0 15W * *",
            "0 0 * * 5L",
            "0 0 * * 1#2",
            "0 0 ? * MON-FRI",
            "0 0 1 jan,jul *",
            "0 0 * * +1-5",
        ] {
            assert!(
                cron_line(line).is_ok(),
                "{line}: {:?}",
                cron_line(line).err()
            );
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
            ("0 0 31 2 *", "never fires: no month has that day"),
            (", * * * *", "invalid minute field `,`"),
            ("0,,5 * * * *", "empty list item"),
            ("0 0 * * 1,", "invalid day-of-week field `1,`"),
            ("0 0 * * L", "a bare `L` is no weekday"),
            ("0 0 * * +", "`+` must be followed by weekdays"),
            ("5/15 * * * *", "a step needs a range or `*`"),
            ("*/0 * * * *", "the step `/0`"),
            ("0 0 * * 5-2", "runs backwards"),
            ("0 0 * * 1#6", "the occurrence after `#` is 1 to 5"),
            (
                "0 0 */3 2 1#5",
                "never fires: no day of the months it names",
            ),
        ];
        for (line, expected) in cases {
            let error = cron_line(line).unwrap_err();
            assert!(error.contains(expected), "{line}: {error}");
        }
        // The empty item is blamed on its own field, not on the calendar.
        let error = cron_line(", * * * *").unwrap_err();
        assert!(error.contains("empty list item"), "{error}");
    }

    /// The next `n` times `line` fires after `from`.
    fn fires(line: &str, from: &str, n: usize) -> Vec<String> {
        let cron = cron_line(line).unwrap();
        let mut at: DateTime<Utc> = from.parse().unwrap();
        (0..n)
            .map(|_| {
                at = cron.cron().find_next_occurrence(&at, false).unwrap();
                at.format("%Y-%m-%d %H:%M").to_string()
            })
            .collect()
    }

    /// Regression: `*/90 * * * *` and `0 */25 * * *` were rejected ("the
    /// step `/90` is not a number from 1 to 59"); cronie takes a step
    /// longer than its field and fires at the field's first value.
    #[test]
    fn a_step_longer_than_its_field_fires_at_the_first_value_as_cronie_does() {
        let from = "2026-12-08T10:15:00Z";
        assert_eq!(
            fires("*/90 * * * *", from, 2),
            ["2026-12-08 11:00", "2026-12-08 12:00"]
        );
        assert_eq!(
            fires("0 */25 * * *", from, 2),
            ["2026-12-09 00:00", "2026-12-10 00:00"]
        );
        assert_eq!(
            fires("10-20/30 * * * *", from, 2),
            ["2026-12-08 11:10", "2026-12-08 12:10"]
        );
    }

    /// Regression: `0 0 * * 1,*` was rejected with croner's "(component
    /// error: Invalid number)", which names no field; cronie reads `*` in a
    /// list as the whole range.
    #[test]
    fn a_star_in_a_list_is_the_whole_range_as_cronie_reads_it() {
        assert_eq!(
            fires("0 0 * * 1,*", "2026-12-08T10:15:00Z", 3),
            ["2026-12-09 00:00", "2026-12-10 00:00", "2026-12-11 00:00"]
        );
        assert_eq!(
            fires("*/30,5 * * * *", "2026-12-08T10:15:00Z", 3),
            ["2026-12-08 10:30", "2026-12-08 11:00", "2026-12-08 11:05"]
        );
    }

    /// Every field is read once, and "never fires" looks at a bounded
    /// number of days, whatever the line says: the empty list item that
    /// once took a year-long calendar search per check is rejected before
    /// any day is looked at, and a line that never fires costs at most
    /// `MAX_DAY_CHECKS` days.
    #[test]
    fn checking_a_line_is_bounded() {
        let long = format!("{} * * * *", vec!["1"; 95].join(","));
        assert!(long.len() <= 200);
        assert!(cron_line(&long).is_ok());
        assert!(cron_line(", * * * *").is_err());
        for line in ["0 0 30,31 2 *", "0 0 */3 2 1#5", "0 0 31 4,6,9,11 *"] {
            let fields: Vec<&str> = line.split(' ').collect();
            let cron = croner::parser::CronParser::builder()
                .dom_and_dow(fields[2].starts_with('*'))
                .build()
                .parse(line)
                .unwrap();
            let mut checks = 0;
            assert!(!super::fires_some_day(&cron, &mut checks), "{line}");
            assert!(checks <= super::MAX_DAY_CHECKS, "{line}: {checks}");
            assert!(cron_line(line).is_err(), "{line}");
        }
        let mut checks = 0;
        let daily = cron_line("0 0 * * *").unwrap();
        assert!(super::fires_some_day(daily.cron(), &mut checks));
        assert_eq!(checks, 1, "the first day of the first month fires");
    }

    #[test]
    fn sunday_ranges_mean_sunday() {
        let sunday: DateTime<Utc> = "2026-12-06T00:00:00Z".parse().unwrap();
        let monday: DateTime<Utc> = "2026-12-07T00:00:00Z".parse().unwrap();
        for line in ["0 0 * * SUN-SUN", "0 0 * * 0-SUN", "0 0 * * 7"] {
            let cron = cron_line(line).unwrap();
            assert!(cron.cron().is_time_matching(&sunday).unwrap(), "{line}");
            assert!(!cron.cron().is_time_matching(&monday).unwrap(), "{line}");
        }
        let week = cron_line("0 0 * * MON-SUN").unwrap();
        assert!(week.cron().is_time_matching(&sunday).unwrap());
        assert!(week.cron().is_time_matching(&monday).unwrap());
    }

    #[test]
    fn fixed_time_lines_have_no_star_in_second_minute_and_hour() {
        for line in [
            "15 1-3 * * *",
            "0,30 2 * * *",
            "30 2,14 * * *",
            "0 2,3 * * *",
            "0-59/30 2 * * *",
            "0 0-23 * * *",
            "0 30 2 * * *",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
        ] {
            assert!(cron_line(line).unwrap().is_fixed_time(), "{line}");
        }
        for line in [
            "*/15 * * * *",
            "0 */2 * * *",
            "@hourly",
            "* 2 * * *",
            "*/10 30 2 * * *",
        ] {
            assert!(!cron_line(line).unwrap().is_fixed_time(), "{line}");
        }
    }
}

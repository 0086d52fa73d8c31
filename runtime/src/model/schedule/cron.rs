//! When a cron line fires. `croner` finds the local wall times that match the
//! line, read in a zone without offsets so that it never has to guess about
//! daylight saving time; this module maps those local times to instants in
//! the job's zone, by cronie's rules:
//!
//! - A **fixed-time** line (no `*` at the start of its second, minute and
//!   hour fields: see [`CronLine::is_fixed_time`]) fires each matching local
//!   time once: at the first instant the zone's clock shows that time or a
//!   later one. A time inside a spring gap therefore fires right after the
//!   jump (several such times fire there one after another, in order), and a
//!   time inside a repeated autumn hour fires on its first pass only.
//! - A **wildcard** line follows real time: it fires at every instant whose
//!   local time matches, so nothing fires inside a gap and a repeated hour
//!   fires on both passes.
//!
//! Fires fall on whole seconds.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset as _, TimeDelta, TimeZone, Utc};
use hosted_spec::{parse_cron, parse_zone, CronLine, Zone};

/// A cron line in a time zone.
pub(crate) struct CronSchedule {
    pub(super) line: String,
    pub(super) parsed: CronLine,
    pub(super) zone: Zone,
}

/// One fire of a cron line: when it runs, and where it stands in the
/// line's sequence of fires. Two fires of a fixed-time line may share an
/// instant (times in one spring gap); their keys differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fire {
    pub(crate) at: DateTime<Utc>,
    /// A fixed-time line's local time (its seconds counted as if the zone
    /// were UTC); a wildcard line's Unix second.
    pub(crate) key: i64,
}

/// No zone's offset changes twice within this span: the search for a
/// transition near a given time looks this far.
const NEAR: TimeDelta = TimeDelta::hours(26);

/// The step of the search for a zone's next transition: transitions are
/// months apart, and never closer than this.
const HOP: TimeDelta = TimeDelta::days(1);

impl CronSchedule {
    pub(crate) fn parse(line: &str, zone: Option<&str>) -> Result<CronSchedule, String> {
        Ok(CronSchedule {
            line: line.to_owned(),
            parsed: parse_cron(line)?,
            zone: zone.map_or(Ok(Zone::Utc), parse_zone)?,
        })
    }

    /// The first fire strictly after `after`, or `None` if the line never
    /// fires again.
    pub(crate) fn first_after(&self, after: DateTime<Utc>) -> Option<Fire> {
        let after = whole_second(after);
        match self.zone {
            Zone::Utc => self.first_after_in(&Utc, after),
            Zone::Local => self.first_after_in(&chrono::Local, after),
            Zone::Named(tz) => self.first_after_in(&tz, after),
        }
    }

    /// The fire that follows `fire`.
    pub(crate) fn after(&self, fire: Fire) -> Option<Fire> {
        match self.zone {
            Zone::Utc => self.after_in(&Utc, fire),
            Zone::Local => self.after_in(&chrono::Local, fire),
            Zone::Named(tz) => self.after_in(&tz, fire),
        }
    }

    /// The fire whose key is `key`.
    pub(crate) fn fire_of(&self, key: i64) -> Option<Fire> {
        match self.zone {
            Zone::Utc => self.fire_of_in(&Utc, key),
            Zone::Local => self.fire_of_in(&chrono::Local, key),
            Zone::Named(tz) => self.fire_of_in(&tz, key),
        }
    }

    /// The zone's offset from UTC at `at`, in seconds.
    pub(crate) fn utc_offset(&self, at: DateTime<Utc>) -> i32 {
        let offset = match self.zone {
            Zone::Utc => TimeDelta::zero(),
            Zone::Local => offset_of(&chrono::Local, at),
            Zone::Named(tz) => offset_of(&tz, at),
        };
        offset.num_seconds() as i32
    }

    /// The line's zone, as written (`UTC`, `Local`, `Europe/Berlin`).
    pub(crate) fn zone_name(&self) -> String {
        self.zone.to_string()
    }

    fn first_after_in<Tz: TimeZone>(&self, tz: &Tz, after: DateTime<Utc>) -> Option<Fire> {
        if self.parsed.is_fixed_time() {
            // Every local time up to the highest the zone's clock has shown
            // by `after` has had its fire.
            let local = self.next_local(high_water(tz, after), false)?;
            Some(self.fixed(tz, local))
        } else {
            self.wildcard_from(tz, after + TimeDelta::seconds(1))
        }
    }

    fn after_in<Tz: TimeZone>(&self, tz: &Tz, fire: Fire) -> Option<Fire> {
        if self.parsed.is_fixed_time() {
            let local = self.next_local(naive(fire.key)?, false)?;
            Some(self.fixed(tz, local))
        } else {
            self.wildcard_from(tz, fire.at + TimeDelta::seconds(1))
        }
    }

    fn fire_of_in<Tz: TimeZone>(&self, tz: &Tz, key: i64) -> Option<Fire> {
        if self.parsed.is_fixed_time() {
            Some(self.fixed(tz, naive(key)?))
        } else {
            Some(Fire {
                at: DateTime::from_timestamp(key, 0)?,
                key,
            })
        }
    }

    /// A fixed-time line's fire for local time `local`: the first instant
    /// at which the zone's clock shows `local` or later.
    fn fixed<Tz: TimeZone>(&self, tz: &Tz, local: NaiveDateTime) -> Fire {
        let at = match tz.from_local_datetime(&local) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => gap_end(tz, local),
        };
        Fire {
            at,
            key: local.and_utc().timestamp(),
        }
    }

    /// A wildcard line's first fire at or after `from`: the first instant
    /// whose local time matches. Within a stretch of constant offset, local
    /// time runs with real time; at a transition the search starts again
    /// from the local time the clock jumped to.
    fn wildcard_from<Tz: TimeZone>(&self, tz: &Tz, mut from: DateTime<Utc>) -> Option<Fire> {
        // Each pass moves `from` to the zone's next transition; a line
        // fires at least once a year, and no zone has this many
        // transitions in a year.
        for _ in 0..64 {
            let offset = offset_of(tz, from);
            let local = self.next_local(from.naive_utc() + offset, true)?;
            let at = (local - offset).and_utc();
            match transition_in(tz, from, at) {
                None => {
                    return Some(Fire {
                        at,
                        key: at.timestamp(),
                    })
                }
                Some(transition) => from = transition,
            }
        }
        None
    }

    /// The first local time after (or at, if `inclusive`) `local` that
    /// matches the line, read as if the zone had no offsets.
    fn next_local(&self, local: NaiveDateTime, inclusive: bool) -> Option<NaiveDateTime> {
        self.parsed
            .cron()
            .find_next_occurrence(&local.and_utc(), inclusive)
            .ok()
            .map(|next| next.naive_utc())
    }
}

fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

fn naive(key: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(key, 0).map(|t| t.naive_utc())
}

/// The zone's offset from UTC at `at`.
fn offset_of<Tz: TimeZone>(tz: &Tz, at: DateTime<Utc>) -> TimeDelta {
    let seconds = tz
        .offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc();
    TimeDelta::seconds(i64::from(seconds))
}

fn local_of<Tz: TimeZone>(tz: &Tz, at: DateTime<Utc>) -> NaiveDateTime {
    at.naive_utc() + offset_of(tz, at)
}

/// The first instant in `(from, to]` whose offset differs from the offset
/// at `from`, to the second; `None` if the offset holds through `to`.
fn transition_in<Tz: TimeZone>(
    tz: &Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let offset = offset_of(tz, from);
    let mut low = from;
    while low < to {
        let high = (low + HOP).min(to);
        if offset_of(tz, high) != offset {
            // The offset is `offset` at `low` and differs at `high`.
            let (mut low, mut high) = (low.timestamp(), high.timestamp());
            while high - low > 1 {
                let mid = low + (high - low) / 2;
                match DateTime::from_timestamp(mid, 0) {
                    Some(at) if offset_of(tz, at) == offset => low = mid,
                    _ => high = mid,
                }
            }
            return DateTime::from_timestamp(high, 0);
        }
        low = high;
    }
    None
}

/// The instant a spring gap containing local time `local` ends: the first
/// instant whose local time is `local` or later.
fn gap_end<Tz: TimeZone>(tz: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let guess = local.and_utc();
    transition_in(tz, guess - NEAR, guess + NEAR).unwrap_or(guess)
}

/// The highest local time the zone's clock has shown up to `at`: the local
/// time at `at`, unless a fall-back transition shortly before set the clock
/// back, in which case the local time just before that transition.
fn high_water<Tz: TimeZone>(tz: &Tz, at: DateTime<Utc>) -> NaiveDateTime {
    let now = local_of(tz, at);
    let before = at - NEAR;
    match transition_in(tz, before, at) {
        Some(transition) => {
            let last_before = transition - TimeDelta::seconds(1);
            now.max(local_of(tz, last_before))
        }
        None => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// Fires of `line` in `zone` after `from`, up to and including `to`.
    fn fires(line: &str, zone: &str, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let cron = CronSchedule::parse(line, Some(zone)).unwrap();
        let mut out = Vec::new();
        let mut next = cron.first_after(at(from));
        while let Some(fire) = next.filter(|f| f.at <= at(to)) {
            assert_eq!(
                cron.fire_of(fire.key),
                Some(fire),
                "{line}: the key round-trips"
            );
            out.push(fire.at);
            next = cron.after(fire);
        }
        out
    }

    #[test]
    fn fires_are_on_whole_seconds() {
        let cron = CronSchedule::parse("* * * * * *", None).unwrap();
        let fire = cron.first_after(at("2026-01-01T00:00:00.250Z")).unwrap();
        assert_eq!(fire.at, at("2026-01-01T00:00:01Z"));
    }

    #[test]
    fn starting_inside_a_repeated_hour_never_fires_a_time_again() {
        // Berlin, 2026-10-25: 02:30 CEST (00:30Z) fired; at 01:10Z the clock
        // shows 02:10 CET, and 02:30 comes again at 01:30Z. Fixed: no.
        let fixed = CronSchedule::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let next = fixed.first_after(at("2026-10-25T01:10:00Z")).unwrap();
        assert_eq!(next.at, at("2026-10-26T01:30:00Z"));
        let wildcard = CronSchedule::parse("30 * * * *", Some("Europe/Berlin")).unwrap();
        let next = wildcard.first_after(at("2026-10-25T01:10:00Z")).unwrap();
        assert_eq!(next.at, at("2026-10-25T01:30:00Z"));
    }

    #[test]
    fn a_list_in_the_gap_fires_each_time_once_in_order() {
        let seen = fires(
            "0,30 2 * * *",
            "Europe/Berlin",
            "2026-03-29T00:00:00Z",
            "2026-03-29T23:00:00Z",
        );
        assert_eq!(
            seen,
            vec![at("2026-03-29T01:00:00Z"), at("2026-03-29T01:00:00Z")]
        );
    }
}

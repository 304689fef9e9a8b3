//! [`UtcTime`]: a Unix time (such as a `_creationTime`) as a UTC calendar date and time, for
//! the places Keel prints one (logs, emails, account pages, tokens, cron schedules).

/// A Unix time broken down into its UTC calendar date and time of day (proleptic Gregorian
/// calendar, Howard Hinnant's civil-from-days algorithm).
///
/// ```
/// use keel_values::utc::UtcTime;
/// let t = UtcTime::from_unix_ms(1_796_549_202_514);
/// assert_eq!((t.year, t.month, t.day), (2026, 12, 6));
/// assert_eq!(t.rfc3339_ms(), "2026-12-06T09:26:42.514Z");
/// assert_eq!(t.weekday(), 0); // a Sunday
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UtcTime {
    /// The year (may be before 1970 or negative for times before the epoch).
    pub year: i64,
    /// The month, 1–12.
    pub month: u32,
    /// The day of the month, 1–31.
    pub day: u32,
    /// The hour, 0–23.
    pub hour: u32,
    /// The minute, 0–59.
    pub minute: u32,
    /// The second, 0–59.
    pub second: u32,
    /// The millisecond, 0–999.
    pub millisecond: u32,
    /// Days since 1970-01-01.
    pub days_since_epoch: i64,
}

impl UtcTime {
    /// The UTC date and time of `ms` milliseconds since the Unix epoch.
    pub fn from_unix_ms(ms: i64) -> UtcTime {
        let secs = ms.div_euclid(1000);
        let millisecond = ms.rem_euclid(1000) as u32;
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        UtcTime {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day % 3600 / 60,
            second: of_day % 60,
            millisecond,
            days_since_epoch: days,
        }
    }

    /// The UTC date and time of `secs` seconds since the Unix epoch.
    pub fn from_unix_secs(secs: i64) -> UtcTime {
        UtcTime::from_unix_ms(secs.saturating_mul(1000))
    }

    /// The day of the week, 0 = Sunday … 6 = Saturday.
    pub fn weekday(&self) -> u32 {
        // 1970-01-01 was a Thursday.
        (self.days_since_epoch + 4).rem_euclid(7) as u32
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn rfc3339_ms(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }
}

/// The (year, month 1–12, day 1–31) of a day counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let epoch = UtcTime::from_unix_ms(0);
        assert_eq!(epoch.rfc3339_ms(), "1970-01-01T00:00:00.000Z");
        assert_eq!(epoch.weekday(), 4);
        assert_eq!(
            UtcTime::from_unix_secs(951_782_400).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            UtcTime::from_unix_ms(-1).rfc3339_ms(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            UtcTime::from_unix_secs(253_402_300_799).rfc3339(),
            "9999-12-31T23:59:59Z"
        );
    }
}

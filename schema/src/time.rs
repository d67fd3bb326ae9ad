//! RFC 3339 timestamps as the API server writes them, to microseconds since the Unix epoch.

/// The current time in µs since the Unix epoch (0 if the clock is before it).
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Parses `2018-10-26T13:42:46.764713Z` (any fraction length, `Z` or an offset) into UTC microseconds.
///
/// The API server always writes the `Z` form, so that path avoids chrono; anything else falls back
/// to chrono's full RFC 3339 parser.
pub fn parse_rfc3339_micros(s: &str) -> Option<i64> {
    fast_utc(s.as_bytes()).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_micros())
    })
}

fn fast_utc(b: &[u8]) -> Option<i64> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[from..to] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    if i + 1 != b.len() || b[i] != b'Z' {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Which event times a live source accepts, relative to the time an event arrives: an event
/// older than `max_age` or more than `max_ahead` in the future is rejected on its own (its list
/// item or line named), so a wrong clock or a forged `1970` or `9999` timestamp cannot open hour
/// partitions without bound. Replaying files applies none: history is what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// How far in the past an event may be; `None`: any age.
    pub max_age: Option<std::time::Duration>,
    /// How far ahead of the receiving clock an event may be; `None`: any.
    pub max_ahead: Option<std::time::Duration>,
}

impl TimeWindow {
    /// The earliest and latest event time accepted at `now` (µs since the epoch).
    pub fn bounds(&self, now: i64) -> (i64, i64) {
        let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        (
            self.max_age
                .map_or(i64::MIN, |d| now.saturating_sub(micros(d))),
            self.max_ahead
                .map_or(i64::MAX, |d| now.saturating_add(micros(d))),
        )
    }
}

/// `2018-10-26T13:42:46Z` for µs since the epoch (to the second; the text of error messages).
pub fn format_micros(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).map_or_else(
        || format!("{micros} µs since the epoch"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Parses `30s`, `10m`, `2h`, `1d` (a positive whole number and a unit).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}

/// A time filter as investigators type it: an RFC 3339 time, a `YYYY-MM-DD` date (its midnight
/// UTC), or a duration before `now` (`30m`, `24h`, `7d`). In µs since the epoch.
pub fn parse_time_bound(value: &str, now: i64) -> Option<i64> {
    if let Some(ago) = parse_duration(value) {
        return Some(now - i64::try_from(ago.as_micros()).ok()?);
    }
    if value.len() == 10 {
        return parse_rfc3339_micros(&format!("{value}T00:00:00Z"));
    }
    parse_rfc3339_micros(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_take_times_dates_and_durations_ago() {
        let now = parse_rfc3339_micros("2025-03-04T12:00:00Z").expect("time");
        assert_eq!(
            parse_time_bound("2h", now),
            parse_rfc3339_micros("2025-03-04T10:00:00Z")
        );
        assert_eq!(
            parse_time_bound("2025-03-01", now),
            parse_rfc3339_micros("2025-03-01T00:00:00Z")
        );
        assert_eq!(
            parse_time_bound("2025-03-04T11:00:00Z", now),
            Some(now - 3_600_000_000)
        );
        assert_eq!(parse_time_bound("yesterday", now), None);
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(
            parse_duration("90d").map(|d| d.as_secs()),
            Some(90 * 86_400)
        );
    }

    #[test]
    fn fast_path_agrees_with_chrono() {
        for s in [
            "2018-10-26T13:42:46.764713Z",
            "2018-10-26T13:42:46Z",
            "2025-10-07T16:19:19.647880072Z",
            "2000-02-29T00:00:00.1Z",
            "1969-12-31T23:59:59.999999Z",
        ] {
            let want = chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_micros())
                .ok();
            assert_eq!(fast_utc(s.as_bytes()), want, "{s}");
        }
    }

    #[test]
    fn offsets_fall_back_to_chrono() {
        assert_eq!(
            parse_rfc3339_micros("2018-10-26T15:42:46+02:00"),
            parse_rfc3339_micros("2018-10-26T13:42:46Z")
        );
        assert_eq!(parse_rfc3339_micros("yesterday"), None);
        assert_eq!(parse_rfc3339_micros("2018-13-26T13:42:46Z"), None);
    }
}

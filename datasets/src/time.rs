//! Hand-written UTC timestamp parsing and civil-date arithmetic (no chrono).

/// Days since 1970-01-01 of the proleptic Gregorian date `year-month-day`
/// (H. Hinnant's `days_from_civil`). `month` is 1..=12, `day` 1..=31; not validated here.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400; // [0, 399]
    let m = i64::from(month);
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day of week of a Unix time: 0 = Monday ... 6 = Sunday.
pub fn weekday(unix_s: i64) -> u32 {
    // 1970-01-01 was a Thursday (3).
    (unix_s.div_euclid(86_400) + 3).rem_euclid(7) as u32
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
pub fn format_utc(unix_s: i64) -> String {
    let (y, m, d) = civil_from_days(unix_s.div_euclid(86_400));
    let s = unix_s.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC) for a Unix time in milliseconds.
pub fn format_utc_ms(unix_ms: i64) -> String {
    let seconds = format_utc(unix_ms.div_euclid(1000));
    let whole = seconds.strip_suffix('Z').unwrap_or(&seconds);
    format!("{whole}.{:03}Z", unix_ms.rem_euclid(1000))
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, &c| {
        acc.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses an ISO-8601-like timestamp to Unix seconds:
/// `YYYY-MM-DD[T| ]HH:MM[:SS[.fff]][Z|±HH[:MM]|±HHMM| UTC]`. No zone means UTC.
/// Fractions of a second are dropped (floor). Returns `None` for anything else,
/// including out-of-range fields.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 16
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b' ' && b[10] != b't')
    {
        return None;
    }
    let year = i64::from(digits(&b[0..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if b[13] != b':' {
        return None;
    }
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let mut rest = &b[16..];
    let mut second = 0;
    if let [b':', s1, s2, tail @ ..] = rest {
        second = digits(&[*s1, *s2])?;
        rest = tail;
        if let [b'.' | b',', tail @ ..] = rest {
            let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            rest = &tail[n..];
        }
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let offset_s: i64 = match rest {
        [] | [b'Z' | b'z'] | b" UTC" | b" Z" | b"+00" => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (hh, mm) = match tail {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if hh > 23 || mm > 59 {
                return None;
            }
            let off = i64::from(hh * 3600 + mm * 60);
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_are_formatted_as_rfc3339() {
        assert_eq!(format_utc_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_utc_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_utc_ms(1_700_000_000_000),
            format_utc(1_700_000_000).replace('Z', ".000Z")
        );
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn parses_known_times() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0));
        // `date -u -d 2014-05-04T11:00:31Z +%s`
        assert_eq!(parse_timestamp("2014-05-04 11:00:31"), Some(1_399_201_231));
        assert_eq!(parse_timestamp("2025-08-27T16:15:27Z"), Some(1_756_311_327));
        assert_eq!(
            parse_timestamp("2025-08-27T18:15:27+02:00"),
            Some(1_756_311_327)
        );
        assert_eq!(
            parse_timestamp("2025-08-27T11:15:27.999-0500"),
            Some(1_756_311_327)
        );
        assert_eq!(parse_timestamp("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_timestamp("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_timestamp("2014-13-04 11:00:31"), None);
        assert_eq!(parse_timestamp("2014-05-04 24:00:31"), None);
        assert_eq!(parse_timestamp("2014-05-04"), None);
        assert_eq!(parse_timestamp("garbage garbage"), None);
        assert_eq!(parse_timestamp("2014-05-04 11:00:31 junk"), None);
        assert_eq!(parse_timestamp("2014-05-04 11:0a:31"), None);
        assert_eq!(parse_timestamp("é014-05-04 11:00:31"), None);
    }

    #[test]
    fn weekday_and_format() {
        assert_eq!(weekday(0), 3); // Thursday
        assert_eq!(weekday(1_704_067_200), 0); // 2024-01-01, a Monday
        assert_eq!(format_utc(1_756_311_327), "2025-08-27T16:15:27Z");
        assert_eq!(format_utc(-1), "1969-12-31T23:59:59Z");
    }
}

//! GitLab's human durations (`timeout: 1h 30m`), as its ChronicDuration reader takes
//! them: numbers with units (`s`, `m`/`min`, `h`/`hr`, `d`, `w`, `mo`, `y` and their
//! long forms, singular or plural), optionally joined by spaces, commas or `and`; a
//! number without a unit is seconds; `h:mm:ss` and `m:ss` clocks.

const MINUTE: f64 = 60.0;
const HOUR: f64 = 3_600.0;
const DAY: f64 = 86_400.0;

/// Seconds, rounded to the nearest; `None` for text that is not a positive duration.
pub(super) fn seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    let total = if text.contains(':') {
        clock(text)?
    } else {
        spelled(text)?
    };
    // Beyond a century is no timeout anyone means; it also keeps the cast exact.
    if !(0.5..=100.0 * 365.0 * DAY).contains(&total) {
        return None;
    }
    Some(total.round() as i64)
}

fn clock(text: &str) -> Option<f64> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut total = 0.0;
    for p in &parts {
        if !p.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        total = total * 60.0 + p.parse::<f64>().ok()?;
    }
    Some(total)
}

fn spelled(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = text;
    let mut any = false;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if let Some(r) = rest.strip_prefix("and") {
            if r.starts_with(|c: char| c.is_whitespace()) {
                rest = r;
                continue;
            }
        }
        if rest.is_empty() {
            break;
        }
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = unit(&rest[..letters].to_ascii_lowercase())?;
        rest = &rest[letters..];
        total += number * unit;
        any = true;
    }
    any.then_some(total)
}

/// Seconds per unit; the empty unit is seconds.
fn unit(word: &str) -> Option<f64> {
    Some(match word {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => MINUTE,
        "h" | "hr" | "hrs" | "hour" | "hours" => HOUR,
        "d" | "day" | "days" => DAY,
        "w" | "wk" | "wks" | "week" | "weeks" => 7.0 * DAY,
        // ChronicDuration's month and year.
        "mo" | "mos" | "month" | "months" => 30.0 * DAY,
        "y" | "yr" | "yrs" | "year" | "years" => 365.0 * DAY,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn gitlab_forms() {
        assert_eq!(seconds("3600"), Some(3600));
        assert_eq!(seconds("90 minutes"), Some(5400));
        assert_eq!(seconds("1h 30m"), Some(5400));
        assert_eq!(seconds("1h30m"), Some(5400));
        assert_eq!(seconds("3 hours 30 minutes"), Some(12_600));
        assert_eq!(seconds("2 hours, 5 minutes and 10 seconds"), Some(7510));
        assert_eq!(seconds("1.5h"), Some(5400));
        assert_eq!(seconds("1 day"), Some(86_400));
        assert_eq!(seconds("1 week"), Some(604_800));
        assert_eq!(seconds("1:30:00"), Some(5400));
        assert_eq!(seconds("10:00"), Some(600));
        assert_eq!(seconds("45 s"), Some(45));
    }

    #[test]
    fn not_durations() {
        for bad in [
            "",
            "  ",
            "soon",
            "1 fortnight",
            "h",
            "0",
            "0m",
            "-5m",
            "1:2:3:4",
            "1::2",
            "1e9",
            "and",
            "1 and",
            "100000 years",
        ] {
            assert_eq!(seconds(bad), None, "{bad:?}");
        }
    }
}

//! The `xsd:duration` subset a terms limit may be written in: days, hours, minutes and seconds.
//!
//! Kept apart from the rest of parsing because it reads text, not JSON, and its refusals are
//! about calendars rather than about terms.

use time::Duration;

/// Parses an `xsd:duration` of days, hours, minutes and seconds (`P30D`, `PT24H`, `P1DT12H`).
/// Years and months are refused: they have no fixed length, and a limit that means 28 days in
/// one month and 31 in another is not one a person can check.
pub(super) fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    const NOT_A_DURATION: &str = "is not a duration such as P30D or PT24H";
    let rest = text.strip_prefix('P').ok_or(NOT_A_DURATION)?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    if date.contains(['Y', 'M', 'W']) {
        return Err(
            "uses years, months or weeks, which have no fixed length; count days instead, \
                    such as P365D",
        );
    }
    let mut seconds: i64 = 0;
    let mut parts = 0;
    if !date.is_empty() {
        let days = date.strip_suffix('D').ok_or(NOT_A_DURATION)?;
        seconds = add_part(seconds, days, 86_400).ok_or(NOT_A_DURATION)?;
        parts += 1;
    }
    if let Some(mut time) = time {
        for (unit, factor) in [('H', 3_600), ('M', 60), ('S', 1)] {
            if let Some((digits, after)) = time.split_once(unit) {
                seconds = add_part(seconds, digits, factor).ok_or(NOT_A_DURATION)?;
                time = after;
                parts += 1;
            }
        }
        if !time.is_empty() || parts == 0 || rest.ends_with('T') {
            return Err(NOT_A_DURATION);
        }
    }
    if parts == 0 {
        return Err(NOT_A_DURATION);
    }
    Ok(Duration::seconds(seconds))
}

/// `total + digits × factor`, or `None` if `digits` is not a plain number or the sum overflows.
fn add_part(total: i64, digits: &str, factor: i64) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    total.checked_add(n.checked_mul(factor)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_days_hours_minutes_and_seconds() {
        for (text, seconds) in [
            ("P30D", 30 * 86_400),
            ("PT24H", 86_400),
            ("P1DT12H", 129_600),
            ("PT5M30S", 330),
            ("PT90S", 90),
            ("P0D", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::seconds(seconds)),
                "{text}"
            );
        }
        for text in [
            "",
            "P",
            "PT",
            "P1DT",
            "30D",
            "P1M",
            "P1Y",
            "P2W",
            "-P1D",
            "P1.5D",
            "PT1H1H",
            "PT30S5M",
            "P D",
            "PT1X",
            "P99999999999999999999D",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert!(parse_duration("P1M").unwrap_err().contains("months"));
    }
}

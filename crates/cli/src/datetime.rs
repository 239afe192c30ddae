//! Points in time as the command line takes them: epoch milliseconds, or an
//! RFC 3339 date and time with its UTC offset (`2024-05-01T12:00:00Z`,
//! `2024-05-01T14:00:00.250+02:00`). The offset is required: a time without
//! one would depend on the zone of the machine that runs the command.

/// Epoch milliseconds from `text` (a clap value parser).
pub fn parse_epoch_ms(text: &str) -> Result<i64, String> {
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text.parse().map_err(|_| format!("{text} is out of range"));
    }
    parse_rfc3339(text).ok_or_else(|| {
        format!("expected epoch milliseconds or an RFC 3339 time such as 2024-05-01T12:00:00Z, found {text:?}")
    })
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    // YYYY-MM-DDTHH:MM:SS, then an optional fraction, then Z or ±HH:MM.
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = &text[range];
        digits
            .bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let separators_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }

    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Milliseconds: the first three digits, padded; finer digits are dropped.
        let first_three = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = first_three.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours = number(text.len() - 5..text.len() - 3)?;
            let minutes = number(text.len() - 2..text.len())?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
        _ => return None,
    };

    let seconds =
        days_since_epoch(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date (negative before it). Years have
/// four digits, so counting year by year is cheap and plainly right.
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    let year_days = |year: i64| if is_leap_year(year) { 366 } else { 365 };
    let mut days: i64 = if year >= 1970 {
        (1970..year).map(year_days).sum()
    } else {
        -(year..1970).map(year_days).sum::<i64>()
    };
    days += (1..month).map(|month| days_in_month(year, month)).sum::<i64>();
    days + day - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_milliseconds_pass_through() {
        assert_eq!(parse_epoch_ms("0"), Ok(0));
        assert_eq!(parse_epoch_ms("1709210096789"), Ok(1_709_210_096_789));
        assert!(parse_epoch_ms("99999999999999999999").is_err());
    }

    #[test]
    fn rfc3339_times_become_epoch_milliseconds() {
        assert_eq!(parse_epoch_ms("1970-01-01T00:00:00Z"), Ok(0));
        // Reference values from `date -u -d ... +%s%3N`.
        assert_eq!(parse_epoch_ms("2024-02-29T12:34:56.789Z"), Ok(1_709_210_096_789));
        assert_eq!(parse_epoch_ms("1969-07-20T20:17:40Z"), Ok(-14_182_940_000));
        assert_eq!(parse_epoch_ms("2000-03-01T00:00:00+05:30"), Ok(951_849_000_000));
        assert_eq!(parse_epoch_ms("2000-02-29t18:30:00-00:00"), Ok(951_849_000_000));
        assert_eq!(parse_epoch_ms("2024-02-29 12:34:56.7891z"), Ok(1_709_210_096_789));
        assert_eq!(parse_epoch_ms("2024-02-29T12:34:56.7Z"), Ok(1_709_210_096_700));
    }

    #[test]
    fn malformed_times_are_refused() {
        for text in [
            "",
            "yesterday",
            "-5",
            "2024-02-29T12:34:56",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0200",
            "2024-01-01T00:00:00+02:00x",
            "2024-01-01X00:00:00Z",
            "2024-01-01T00:00:00Zé",
        ] {
            assert!(parse_epoch_ms(text).is_err(), "{text:?} was accepted");
        }
    }
}

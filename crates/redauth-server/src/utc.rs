//! Unix times as RFC 3339 UTC text (`2024-02-29T13:05:09Z`) for people reading the admin
//! CLI's output. Small enough to write here rather than take a date crate for one
//! function: the proleptic Gregorian calendar, by Howard Hinnant's `civil_from_days`
//! (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).

use redauth_core::UnixTime;

const SECS_PER_DAY: i64 = 86_400;

/// `unix` as `YYYY-MM-DDThh:mm:ssZ`. Total: any `i64` gives some text, never a panic
/// (years before 0 or after 9999 are outside RFC 3339 and print with fewer or more
/// digits; no session lives there).
pub fn rfc3339(unix: UnixTime) -> String {
    let days = unix.div_euclid(SECS_PER_DAY);
    let secs = unix.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// (year, month 1–12, day 1–31) of the day `days` after 1970-01-01. The calendar
/// repeats every 400 years (146,097 days); within an era, shifting the year to start
/// on 1 March puts the leap day last, so month lengths follow a fixed pattern.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Days from 0000-03-01 to 1970-01-01. `i64::MIN / SECS_PER_DAY` plus this cannot
    // overflow, nor can anything below.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        for (unix, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_212_509, "2024-02-29T13:15:09Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
            (-62_167_219_200, "0000-01-01T00:00:00Z"),
        ] {
            assert_eq!(rfc3339(unix), text, "{unix}");
        }
    }

    /// Against a plain day-by-day count over two full 400-year cycles from 1970.
    #[test]
    fn every_day_of_800_years_follows_the_previous_one() {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..2 * 146_097 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let month_len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        for unix in [i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1] {
            assert!(rfc3339(unix).ends_with('Z'));
        }
    }
}

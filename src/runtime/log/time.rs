//! Local-time stamps in nginx's formats, for the access log (`$time_local`, `$time_iso8601`) and the
//! error log (`2026/11/27 04:54:37`).
//!
//! nginx formats local time with the zone offset of the moment (`localtime_r` + `tm_gmtoff`); so do we.
//! The broken-down time is cached per thread for the current second, because every request asks.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A calendar time in the local zone, with the zone's offset from UTC in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    /// 1..=12
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    pub gmtoff: i64,
}

thread_local! {
    static CACHE: Cell<Option<(i64, LocalTime)>> = const { Cell::new(None) };
}

impl LocalTime {
    /// The local time of `t` (whole seconds; nginx's stamps have no fraction).
    pub fn from_system(t: SystemTime) -> LocalTime {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        Self::from_unix(secs)
    }

    pub fn now() -> LocalTime {
        Self::from_system(SystemTime::now())
    }

    pub fn from_unix(secs: i64) -> LocalTime {
        if let Some((s, lt)) = CACHE.with(Cell::get) {
            if s == secs {
                return lt;
            }
        }
        let lt = localtime(secs);
        CACHE.with(|c| c.set(Some((secs, lt))));
        lt
    }

    /// `27/Nov/2026:04:54:37 +0000` (nginx's `$time_local`).
    pub fn time_local(&self) -> String {
        format!(
            "{:02}/{}/{:04}:{:02}:{:02}:{:02} {}",
            self.day,
            MONTHS[(self.month.clamp(1, 12) - 1) as usize],
            self.year,
            self.hour,
            self.min,
            self.sec,
            self.offset(false)
        )
    }

    /// `2026-11-27T04:54:37+00:00` (nginx's `$time_iso8601`).
    pub fn iso8601(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.min,
            self.sec,
            self.offset(true)
        )
    }

    /// `2026/11/27 04:54:37` (the error log's stamp).
    pub fn error_log(&self) -> String {
        format!(
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.min, self.sec
        )
    }

    fn offset(&self, colon: bool) -> String {
        let sign = if self.gmtoff < 0 { '-' } else { '+' };
        let m = self.gmtoff.unsigned_abs() / 60;
        if colon {
            format!("{sign}{:02}:{:02}", m / 60, m % 60)
        } else {
            format!("{sign}{:02}{:02}", m / 60, m % 60)
        }
    }
}

fn localtime(secs: i64) -> LocalTime {
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills in; both pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return utc(secs);
    }
    LocalTime {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        min: tm.tm_min as u32,
        sec: tm.tm_sec as u32,
        gmtoff: tm.tm_gmtoff,
    }
}

/// UTC calendar from a unix time (civil-from-days), used when the C library cannot convert.
pub fn utc(secs: i64) -> LocalTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    LocalTime {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        min: (rem % 3600 / 60) as u32,
        sec: (rem % 60) as u32,
        gmtoff: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        // 2026-11-27 04:54:37 UTC
        let t = utc(1_795_755_277);
        assert_eq!(t.time_local(), "27/Nov/2026:04:54:37 +0000");
        assert_eq!(t.error_log(), "2026/11/27 04:54:37");
        assert_eq!(t.iso8601(), "2026-11-27T04:54:37+00:00");
        let east = LocalTime {
            gmtoff: -(5 * 3600 + 30 * 60),
            ..t
        };
        assert_eq!(east.time_local(), "27/Nov/2026:04:54:37 -0530");
        assert_eq!(east.iso8601(), "2026-11-27T04:54:37-05:30");
    }

    #[test]
    fn utc_epoch_and_leap_day() {
        assert_eq!(utc(0).error_log(), "1970/01/01 00:00:00");
        assert_eq!(utc(951_782_400).error_log(), "2000/02/29 00:00:00");
    }
}

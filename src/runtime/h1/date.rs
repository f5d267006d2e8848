//! The `Date` response header value, formatted once per second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
const LEN: usize = 29;

struct Cached {
    secs: u64,
    text: [u8; LEN],
}

thread_local! {
    static CACHED: RefCell<Cached> = const { RefCell::new(Cached { secs: u64::MAX, text: [0; LEN] }) };
}

/// Appends the current date in HTTP's format to `dst`.
pub fn extend(dst: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let done = CACHED.try_with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else {
            return false;
        };
        if c.secs != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() != LEN {
                return false;
            }
            c.text.copy_from_slice(text.as_bytes());
            c.secs = secs;
        }
        dst.extend_from_slice(&c.text);
        true
    });
    if done != Ok(true) {
        dst.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
    }
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    #[test]
    fn date_is_an_http_date_of_now() {
        let mut a = Vec::new();
        super::extend(&mut a);
        let text = String::from_utf8(a).unwrap();
        let parsed = httpdate::parse_http_date(&text).unwrap();
        let age = std::time::SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() < 5, "{text}");
        let mut b = Vec::new();
        super::extend(&mut b);
        assert_eq!(b.len(), super::LEN);
    }
}

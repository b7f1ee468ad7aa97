//! Bounded excerpts of program output and messages.
//!
//! Provisioners put the stderr of a driver, a cleaner script or a tool into
//! errors and Events; the API server caps an Event's note, and a runaway
//! program can print megabytes. These helpers cut at a byte budget without
//! splitting a UTF-8 character and say with `…` that something was cut.

/// The last `max` bytes of `bytes` (lossy UTF-8, surrounding whitespace
/// trimmed), prefixed with `…` when cut: the end of an output is where the
/// error usually is.
pub fn tail(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &s[cut..])
}

/// The first `max` bytes of `bytes` (lossy UTF-8, surrounding whitespace
/// trimmed), followed by `…` when cut.
pub fn head(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    format!("{}…", &s[..floor_char_boundary(s, max)])
}

/// Shortens `s` in place to at most `max` bytes, on a character boundary.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let cut = floor_char_boundary(s, max);
        s.truncate(cut);
    }
}

/// The largest character boundary of `s` at or below `index`.
fn floor_char_boundary(s: &str, index: usize) -> usize {
    let mut cut = index.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_and_utf8_safe() {
        assert_eq!(tail(b"  abc \n", 10), "abc");
        assert_eq!(tail(b"0123456789", 3), "…789");
        assert_eq!(head(b"0123456789", 3), "012…");
        let s = "ééééé".as_bytes();
        assert_eq!(tail(s, 3), "…é");
        assert_eq!(head(s, 3), "é…");
        assert_eq!(tail(&[0xff, b'a'], 10), "\u{fffd}a");
        assert_eq!(head(b"", 0), "");
    }

    #[test]
    fn truncate_keeps_whole_characters() {
        let mut s = "aéb".to_string(); // a, é (2 bytes), b
        truncate(&mut s, 2);
        assert_eq!(s, "a");
        let mut s = "short".to_string();
        truncate(&mut s, 100);
        assert_eq!(s, "short");
        let mut s = "x".repeat(1500);
        truncate(&mut s, 1000);
        assert_eq!(s.len(), 1000);
    }
}

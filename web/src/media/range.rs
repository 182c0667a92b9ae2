//! HTTP Range (RFC 9110 §14) for the audio answers: one byte range of a body of known
//! length. `bytes=a-b`, `bytes=a-` and `bytes=-n` are served as 206; a range that starts
//! past the end (or a suffix of 0 bytes) is 416; several ranges, another unit or a
//! malformed header are ignored (the whole body, 200), as the RFC allows.

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// The whole body (no header, or one this server ignores).
    All,
    /// Bytes `start..=end` (inclusive, as in `Content-Range`).
    Part { start: u64, end: u64 },
    /// Nothing of it can be served: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Parses a `Range` header value against a body of `len` bytes.
pub(crate) fn wanted(header: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::All;
    };
    let number = |s: &str| -> Option<Option<u64>> {
        let s = s.trim();
        if s.is_empty() {
            Some(None)
        } else if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok().map(Some)
        } else {
            None
        }
    };
    match (number(first), number(last)) {
        (Some(Some(start)), Some(end)) => {
            if start >= len {
                return Wanted::Unsatisfiable;
            }
            match end {
                Some(end) if end < start => Wanted::All,
                Some(end) => Wanted::Part {
                    start,
                    end: end.min(len - 1),
                },
                None => Wanted::Part {
                    start,
                    end: len - 1,
                },
            }
        }
        (Some(None), Some(Some(suffix))) => {
            if suffix == 0 || len == 0 {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part {
                    start: len.saturating_sub(suffix),
                    end: len - 1,
                }
            }
        }
        _ => Wanted::All,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_a_hundred_bytes() {
        let part = |start, end| Wanted::Part { start, end };
        for (header, expected) in [
            (None, Wanted::All),
            (Some("bytes=0-9"), part(0, 9)),
            (Some("bytes=90-"), part(90, 99)),
            (Some("bytes=90-500"), part(90, 99)),
            (Some("bytes=-10"), part(90, 99)),
            (Some("bytes=-500"), part(0, 99)),
            (Some("bytes=100-"), Wanted::Unsatisfiable),
            (Some("bytes=-0"), Wanted::Unsatisfiable),
            (Some("bytes=5-2"), Wanted::All),
            (Some("bytes=0-1,5-6"), Wanted::All),
            (Some("items=0-1"), Wanted::All),
            (Some("bytes=a-b"), Wanted::All),
            (Some("bytes=-"), Wanted::All),
        ] {
            assert_eq!(wanted(header, 100), expected, "{header:?}");
        }
    }
}

//! How the log stores events: several consecutive events under one key (the first one's
//! seq), because each key a sled transaction writes costs a walk, a copy of its leaf and a
//! log record, whatever its size. A value is either one event's JSON object (every store
//! written before chunks, and a lone event larger than a chunk) or a chunk: the tag byte 0
//! and then, per event, its JSON's length (u32, big-endian) and the JSON itself.

/// A chunk closes before passing this many bytes. sled keeps up to 17 values in a leaf and
/// writes a leaf whole when it consolidates; 17 chunks of this size stay well below the
/// largest record it keeps in its log (a quarter segment, 128 KiB by default) rather than
/// in a file of its own.
pub const CHUNK_BYTES: usize = 4096;

const TAG: u8 = 0;

/// Groups `events` (each one's JSON, in seq order) into the values to store: each is
/// returned with the index of its first event.
pub fn pack<'a>(events: impl IntoIterator<Item = &'a [u8]>) -> Vec<(usize, Vec<u8>)> {
    let mut out: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, json) in events.into_iter().enumerate() {
        let fits = open
            .as_ref()
            .is_some_and(|(_, c)| c.len() + 4 + json.len() <= CHUNK_BYTES);
        if !fits {
            out.extend(open.take().map(close));
            open = Some((i, vec![TAG]));
        }
        let (_, c) = open.as_mut().expect("opened above");
        c.extend_from_slice(&(json.len() as u32).to_be_bytes());
        c.extend_from_slice(json);
    }
    out.extend(open.map(close));
    out
}

/// A chunk of one event is stored as the bare JSON, as before chunks.
fn close((first, chunk): (usize, Vec<u8>)) -> (usize, Vec<u8>) {
    match split(&chunk).as_deref() {
        Ok([one]) => (first, one.to_vec()),
        _ => (first, chunk),
    }
}

/// The JSON of each event a stored value holds, in seq order.
pub fn split(value: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    match value.first() {
        Some(b'{') => Ok(vec![value]),
        Some(&TAG) => {
            let mut parts = Vec::new();
            let mut rest = &value[1..];
            while !rest.is_empty() {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return Err("a chunk ends inside a length");
                };
                let len = u32::from_be_bytes(*len) as usize;
                if tail.len() < len {
                    return Err("a chunk ends inside an event");
                }
                let (json, tail) = tail.split_at(len);
                parts.push(json);
                rest = tail;
            }
            if parts.is_empty() {
                return Err("an empty chunk");
            }
            Ok(parts)
        }
        _ => Err("neither an event nor a chunk"),
    }
}

/// One value holding `parts` (what is left of a chunk after retention).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    match parts {
        [one] => one.to_vec(),
        _ => {
            let mut c = vec![TAG];
            for json in parts {
                c.extend_from_slice(&(json.len() as u32).to_be_bytes());
                c.extend_from_slice(json);
            }
            c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize, size: usize) -> Vec<u8> {
        let pad = "x".repeat(size.saturating_sub(12));
        format!(r#"{{"n":{n:03},"p":"{pad}"}}"#).into_bytes()
    }

    #[test]
    fn packs_whole_events_into_chunks_below_the_limit_and_splits_them_back() {
        let events: Vec<Vec<u8>> = (0..40).map(|n| event(n, 500)).collect();
        let packed = pack(events.iter().map(Vec::as_slice));
        assert!(packed.len() > 1 && packed.len() < 10, "{}", packed.len());
        let mut back = Vec::new();
        for (first, value) in &packed {
            assert!(value.len() <= CHUNK_BYTES, "{}", value.len());
            assert_eq!(*first, back.len(), "a value's first event is its index");
            back.extend(split(value).unwrap().into_iter().map(<[u8]>::to_vec));
        }
        assert_eq!(back, events);
    }

    #[test]
    fn a_lone_or_oversized_event_is_stored_bare_as_before_chunks() {
        let big = event(1, CHUNK_BYTES + 10);
        let packed = pack([
            event(0, 100).as_slice(),
            big.as_slice(),
            event(2, 100).as_slice(),
        ]);
        let values: Vec<&[u8]> = packed.iter().map(|(_, v)| v.as_slice()).collect();
        assert_eq!(
            values,
            [
                event(0, 100).as_slice(),
                big.as_slice(),
                event(2, 100).as_slice()
            ]
        );
        assert_eq!(split(&big).unwrap(), [big.as_slice()]);
        assert_eq!(join(&[big.as_slice()]), big);
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let good = pack([event(0, 50).as_slice(), event(1, 50).as_slice()])
            .remove(0)
            .1;
        for cut in 1..good.len() {
            // Every cut either still parses as fewer whole events or is refused.
            if let Ok(parts) = split(&good[..cut]) {
                assert!(parts.len() < 2);
            }
        }
        assert!(split(b"").is_err());
        assert!(split(&[TAG]).is_err());
        assert!(split(b"[1]").is_err());
    }
}

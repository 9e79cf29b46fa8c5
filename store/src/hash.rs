//! Java `String.hashCode` and the two hashes RocketMQ derives from it (tag code, index key hash).

/// Java's `String.hashCode()`: `h = 31 * h + c` over the UTF-16 code units of `s`, wrapping in
/// 32 bits. Characters outside the BMP count as two code units (a surrogate pair), as in Java.
pub fn java_string_hash(s: &str) -> i32 {
    java_hash_continue(0, s)
}

/// Continues the Java hash `h` of some prefix over `s`. An ASCII string's UTF-16 units are its
/// bytes, so the common case skips the UTF-16 encoder.
fn java_hash_continue(h: i32, s: &str) -> i32 {
    let step = |h: i32, unit: i32| h.wrapping_mul(31).wrapping_add(unit);
    if s.is_ascii() {
        java_hash_ascii(h, s.as_bytes())
    } else {
        s.encode_utf16().fold(h, |h, u| step(h, i32::from(u)))
    }
}

/// The Java hash continued over ASCII bytes, four at a time: `h·31⁴ + a·31³ + b·31² + c·31 + d`
/// is four steps of `h·31 + x` (in wrapping 32-bit arithmetic, as Java's), with a shorter
/// dependency chain. The dispatcher hashes `topic#key` for every index key of every record.
fn java_hash_ascii(mut h: i32, b: &[u8]) -> i32 {
    const P2: i32 = 31 * 31;
    const P3: i32 = 31 * 31 * 31;
    const P4: i32 = 31 * 31 * 31 * 31;
    let mut quads = b.chunks_exact(4);
    for q in &mut quads {
        if let [a, b, c, d] = *q {
            h = h
                .wrapping_mul(P4)
                .wrapping_add(i32::from(a) * P3)
                .wrapping_add(i32::from(b) * P2)
                .wrapping_add(i32::from(c) * 31)
                .wrapping_add(i32::from(d));
        }
    }
    quads
        .remainder()
        .iter()
        .fold(h, |h, &x| h.wrapping_mul(31).wrapping_add(i32::from(x)))
}

/// The Java hash of the concatenation of `parts`, without building the string.
fn java_hash_of_parts(parts: &[&str]) -> i32 {
    parts.iter().fold(0i32, |h, p| java_hash_continue(h, p))
}

/// ConsumeQueue `tagsCode` of a tag: its Java hash sign-extended to 64 bits; 0 for no tag
/// (`MessageExtBrokerInner.tagsString2tagsCode`; the empty string hashes to 0 anyway).
pub fn tags_code(tag: &str) -> i64 {
    i64::from(java_string_hash(tag))
}

/// IndexFile key hash (`IndexFile.indexKeyHashMethod`): `Math.abs(key.hashCode())`, where the one
/// value whose absolute value overflows (`Integer.MIN_VALUE`) maps to 0. Always in `0..=i32::MAX`.
pub fn index_key_hash(key: &str) -> i32 {
    abs_or_zero(java_string_hash(key))
}

/// [`index_key_hash`] of the IndexFile key `topic + "#" + key`, without allocating it.
pub fn index_key_hash_of(topic: &str, key: &str) -> i32 {
    abs_or_zero(java_hash_of_parts(&[topic, "#", key]))
}

fn abs_or_zero(h: i32) -> i32 {
    let h = h.wrapping_abs();
    if h < 0 {
        0
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference model: the same recurrence computed in i64 and reduced modulo 2^32 at each step,
    /// then reinterpreted as a two's-complement i32 (what Java's int arithmetic does).
    fn model(s: &str) -> i32 {
        let mut h: i64 = 0;
        for unit in s.encode_utf16() {
            h = (h * 31 + i64::from(unit)).rem_euclid(1 << 32);
        }
        if h >= 1 << 31 {
            (h - (1 << 32)) as i32
        } else {
            h as i32
        }
    }

    #[test]
    fn java_string_hash_matches_known_java_values() {
        // Values printed by Java's "...".hashCode().
        assert_eq!(java_string_hash(""), 0);
        // 'T'=84,'a'=97,'g'=103,'A'=65: ((84*31+97)*31+103)*31+65 = 2598919.
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        assert_eq!(java_string_hash("TagB"), 2_598_920);
        assert_eq!(java_string_hash("*"), 42);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // Wraps past i32: "polygenelubricants".hashCode() == Integer.MIN_VALUE (a well-known case).
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // Non-ASCII, BMP: '中' = U+4E2D = 20013, '文' = U+6587 = 25991: 20013*31 + 25991 = 646394.
        assert_eq!(java_string_hash("中文"), 646_394);
        // 'é' (U+00E9 = 233) is one UTF-16 unit although it is two UTF-8 bytes.
        assert_eq!(java_string_hash("é"), 233);
        // Outside the BMP: U+1F600 is the surrogate pair D83D DE00 in UTF-16:
        // 0xD83D*31 + 0xDE00 = 55357*31 + 56832 = 1772899.
        assert_eq!(java_string_hash("\u{1F600}"), 1_772_899);
    }

    #[test]
    fn tags_code_sign_extends() {
        assert_eq!(tags_code("TagA"), 2_598_919);
        assert_eq!(tags_code(""), 0);
        assert_eq!(tags_code("polygenelubricants"), i64::from(i32::MIN));
        assert!(tags_code("polygenelubricants") < 0);
    }

    #[test]
    fn index_key_hash_maps_min_to_zero_and_negatives_to_abs() {
        assert_eq!(index_key_hash("polygenelubricants"), 0);
        assert_eq!(index_key_hash("TagA"), 2_598_919);
        // A key whose Java hash is negative maps to its absolute value.
        let negative = (0..1000)
            .map(|i| format!("TopicTest#key-{i}"))
            .find(|k| model(k) < 0)
            .expect("some key among 1000 hashes negative");
        assert_eq!(index_key_hash(&negative), -model(&negative));
    }

    proptest! {
        /// ASCII strings take the four-bytes-at-a-time path; every length mod 4 is covered.
        #[test]
        fn ascii_hash_matches_model(s in "[ -~]{0,70}", t in "[ -~]{0,9}") {
            prop_assert_eq!(java_string_hash(&s), model(&s));
            prop_assert_eq!(index_key_hash_of(&t, &s), index_key_hash(&format!("{t}#{s}")));
        }

        #[test]
        fn java_string_hash_matches_model(s in any::<String>()) {
            prop_assert_eq!(java_string_hash(&s), model(&s));
            let k = index_key_hash(&s);
            prop_assert!(k >= 0);
            let (a, b) = s.split_at(s.char_indices().nth(s.chars().count() / 2).map_or(0, |(i, _)| i));
            prop_assert_eq!(index_key_hash_of(a, b), index_key_hash(&format!("{a}#{b}")));
        }
    }
}

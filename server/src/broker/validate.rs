//! Topic and group name validation (RocketMQ's `TopicValidator` rules), applied before any file or
//! directory is named after a name.
//!
//! The charset `^[%|a-zA-Z0-9_-]+$` already excludes `.`, `/`, `\`, NUL and whitespace, so a valid
//! name can never be `..`, contain a path separator, or escape the store directory. Lengths are
//! capped so that `%RETRY%<group>` / `%DLQ%<group>` stay within one file-name component (255 bytes).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

#[allow(unused_imports)]
pub use super::topics::{is_not_allowed_send_topic, is_system_topic};

/// Longest normal topic (Java `TOPIC_MAX_LENGTH`).
pub const TOPIC_LEN_MAX: usize = 127;
/// Longest retry/DLQ topic (`%RETRY%<group>`, `%DLQ%<group>`): one file-name component.
pub const SYSTEM_TOPIC_LEN_MAX: usize = 255;
/// Longest consumer/producer group name.
pub const GROUP_LEN_MAX: usize = 120;

pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";

/// Response code for a rejected name (`ResponseCode.INVALID_PARAMETER`).
pub const INVALID_PARAMETER: i32 = 29;

/// Why a name was refused. [`NameError::remark`] gives Java's remark text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("The specified topic is blank.")]
    TopicBlank,
    #[error("The specified topic contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$")]
    TopicIllegalChars,
    #[error("The specified topic is longer than topic max length.")]
    TopicTooLong { len: usize, max: usize },
    #[error("the specified group is blank")]
    GroupBlank,
    #[error("the specified group[{shown}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$")]
    GroupIllegalChars { shown: String },
    #[error("the specified group is longer than group max length {max}.")]
    GroupTooLong { len: usize, max: usize },
}

impl NameError {
    /// The remark to put in the response (Java's wording).
    pub fn remark(&self) -> String {
        self.to_string()
    }

    /// The response code to answer with.
    pub fn code(&self) -> i32 {
        INVALID_PARAMETER
    }
}

/// True when every char is in `[%|a-zA-Z0-9_-]` (Java `isTopicOrGroupIllegal` negated).
/// One table load per byte, the store's table (every send checks its topic; the two-range test
/// per byte was ~100 instructions for a 10-byte topic, callgrind, 2026-11-22).
pub fn is_legal_charset(s: &str) -> bool {
    ferrocket_store::legal_name_charset(s)
}

/// True for `%RETRY%…` and `%DLQ%…` topics.
pub fn is_retry_or_dlq_topic(topic: &str) -> bool {
    topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) || topic.starts_with(DLQ_GROUP_TOPIC_PREFIX)
}

/// Validates a topic name. Retry and DLQ topics may be up to [`SYSTEM_TOPIC_LEN_MAX`] long.
pub fn validate_topic(topic: &str) -> Result<(), NameError> {
    if topic.trim().is_empty() {
        return Err(NameError::TopicBlank);
    }
    if !is_legal_charset(topic) {
        return Err(NameError::TopicIllegalChars);
    }
    let max = if is_retry_or_dlq_topic(topic) {
        SYSTEM_TOPIC_LEN_MAX
    } else {
        TOPIC_LEN_MAX
    };
    // The charset is ASCII, so chars == bytes here.
    if topic.len() > max {
        return Err(NameError::TopicTooLong {
            len: topic.len(),
            max,
        });
    }
    Ok(())
}

/// Validates a consumer or producer group name.
pub fn validate_group(group: &str) -> Result<(), NameError> {
    if group.trim().is_empty() {
        return Err(NameError::GroupBlank);
    }
    if !is_legal_charset(group) {
        return Err(NameError::GroupIllegalChars {
            shown: shown_name(group),
        });
    }
    if group.len() > GROUP_LEN_MAX {
        return Err(NameError::GroupTooLong {
            len: group.len(),
            max: GROUP_LEN_MAX,
        });
    }
    Ok(())
}

/// A hostile name made safe to echo in a remark or log: at most 64 chars, control chars escaped.
pub fn shown_name(name: &str) -> String {
    let mut out: String = name.chars().take(64).flat_map(char::escape_debug).collect();
    if name.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

/// `%RETRY%<group>`.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// `%DLQ%<group>`.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The table says what the two-range test it replaces says, for every byte.
    #[test]
    fn legal_charset_table_matches_the_ranges() {
        for b in 0..=127u8 {
            let want = b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-');
            let one = char::from(b).to_string();
            assert_eq!(is_legal_charset(&one), want, "byte {b}");
        }
        assert!(is_legal_charset("%RETRY%group_A-1|x"));
        assert!(!is_legal_charset("a b"));
        assert!(!is_legal_charset("é"));
    }

    #[test]
    fn topic_table() {
        let long_ok = "a".repeat(127);
        let long_bad = "a".repeat(128);
        let retry_ok = format!("%RETRY%{}", "g".repeat(248));
        let retry_bad = format!("%RETRY%{}", "g".repeat(249));
        let huge = "x".repeat(10_000);
        let cases: Vec<(&str, Result<(), NameError>)> = vec![
            ("TopicTest", Ok(())),
            ("%RETRY%group_1", Ok(())),
            ("%DLQ%g-1", Ok(())),
            ("a|b%c_d-e09", Ok(())),
            (&long_ok, Ok(())),
            (&retry_ok, Ok(())),
            ("", Err(NameError::TopicBlank)),
            ("   ", Err(NameError::TopicBlank)),
            ("../../x", Err(NameError::TopicIllegalChars)),
            ("..", Err(NameError::TopicIllegalChars)),
            (".", Err(NameError::TopicIllegalChars)),
            ("a/b", Err(NameError::TopicIllegalChars)),
            ("a\\b", Err(NameError::TopicIllegalChars)),
            ("a\0b", Err(NameError::TopicIllegalChars)),
            ("\0", Err(NameError::TopicIllegalChars)),
            ("a b", Err(NameError::TopicIllegalChars)),
            ("tópico", Err(NameError::TopicIllegalChars)),
            ("a\nb", Err(NameError::TopicIllegalChars)),
            (
                &long_bad,
                Err(NameError::TopicTooLong { len: 128, max: 127 }),
            ),
            (
                &retry_bad,
                Err(NameError::TopicTooLong { len: 256, max: 255 }),
            ),
            (
                &huge,
                Err(NameError::TopicTooLong {
                    len: 10_000,
                    max: 127,
                }),
            ),
        ];
        for (name, want) in cases {
            assert_eq!(validate_topic(name), want, "{}", shown_name(name));
        }
    }

    #[test]
    fn topic_remarks_are_java_wording() {
        assert_eq!(
            validate_topic("a/b").unwrap_err().remark(),
            "The specified topic contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        );
        assert_eq!(
            validate_topic("").unwrap_err().remark(),
            "The specified topic is blank."
        );
        assert_eq!(
            validate_topic(&"a".repeat(200)).unwrap_err().remark(),
            "The specified topic is longer than topic max length."
        );
        assert_eq!(validate_topic("").unwrap_err().code(), 29);
    }

    #[test]
    fn group_table() {
        let huge = "g".repeat(10_000);
        assert_eq!(validate_group("please_rename_unique_group_name"), Ok(()));
        assert_eq!(validate_group(&"g".repeat(120)), Ok(()));
        assert_eq!(validate_group(""), Err(NameError::GroupBlank));
        assert!(matches!(
            validate_group("../../x"),
            Err(NameError::GroupIllegalChars { .. })
        ));
        assert!(matches!(
            validate_group("a\0b"),
            Err(NameError::GroupIllegalChars { .. })
        ));
        assert!(matches!(
            validate_group(&huge),
            Err(NameError::GroupTooLong { len: 10_000, .. })
        ));
        // The longest group still gives a retry topic that is a valid topic.
        assert_eq!(validate_topic(&retry_topic(&"g".repeat(120))), Ok(()));
        assert_eq!(validate_topic(&dlq_topic(&"g".repeat(120))), Ok(()));
    }

    #[test]
    fn remarks_never_echo_raw_hostile_bytes() {
        let name = format!("a\0b\n{}", "z".repeat(10_000));
        let remark = validate_group(&name).unwrap_err().remark();
        assert!(!remark.contains('\0') && !remark.contains('\n'));
        assert!(remark.len() < 300, "{}", remark.len());
        assert!(remark.contains("a\\0b\\n"));
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a client sends, a name that validates is a single, harmless path
            /// component: no separator, no dot, no NUL, not empty, at most 255 bytes.
            #[test]
            fn valid_names_are_safe_path_components(name in ".{0,300}") {
                for ok in [validate_topic(&name).is_ok(), validate_group(&name).is_ok()] {
                    if ok {
                        prop_assert!(!name.is_empty() && name.len() <= 255);
                        prop_assert!(!name.contains(['/', '\\', '.', '\0']));
                        prop_assert!(name.bytes().all(|b| b.is_ascii_graphic()));
                    }
                }
            }

            /// Names from the charset validate exactly when short enough.
            #[test]
            fn charset_names_validate_by_length(name in "[%|a-zA-Z0-9_-]{1,300}") {
                let max = if is_retry_or_dlq_topic(&name) { SYSTEM_TOPIC_LEN_MAX } else { TOPIC_LEN_MAX };
                prop_assert_eq!(validate_topic(&name).is_ok(), name.len() <= max);
                prop_assert_eq!(validate_group(&name).is_ok(), name.len() <= GROUP_LEN_MAX);
            }
        }
    }
}

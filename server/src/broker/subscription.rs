//! Subscription expressions (`*`, `TagA || TagB`, with or without spaces) and their tag hash
//! codes, as RocketMQ's `FilterAPI.buildSubscriptionData` builds them.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::BTreeSet;

use ferrocket_store::TagFilter;

/// The "subscribe to everything" expression.
pub const SUB_ALL: &str = "*";
/// Longest expression accepted (a hostile client cannot make the broker hash megabytes).
pub const EXPRESSION_LEN_MAX: usize = 64 * 1024;

/// Java `String.hashCode` over UTF-16 code units (`h = 31*h + c`, wrapping), the tag hash the
/// ConsumeQueue stores and clients put in `codeSet`.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// A consumer's subscription to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionData {
    pub topic: String,
    /// The expression as sent (`*` when empty).
    pub sub_string: String,
    pub tags_set: BTreeSet<String>,
    pub code_set: BTreeSet<i32>,
    pub sub_version: i64,
    /// `TAG` (default) or `SQL92`.
    pub expression_type: String,
}

/// Why an expression was refused (SUBSCRIPTION_PARSE_FAILED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("subString split error: {0:?}")]
    Split(String),
    #[error("subscription expression longer than {EXPRESSION_LEN_MAX} bytes")]
    TooLong,
    #[error("expression type {0} is not supported")]
    Unsupported(String),
}

impl SubscriptionData {
    /// Builds a TAG subscription from `expr` (None/empty/`*` = everything).
    pub fn parse(
        topic: &str,
        expr: Option<&str>,
        sub_version: i64,
    ) -> Result<Self, SubscriptionError> {
        let expr = expr.unwrap_or("").trim();
        if expr.len() > EXPRESSION_LEN_MAX {
            return Err(SubscriptionError::TooLong);
        }
        let mut data = SubscriptionData {
            topic: topic.to_string(),
            sub_string: SUB_ALL.to_string(),
            tags_set: BTreeSet::new(),
            code_set: BTreeSet::new(),
            sub_version,
            expression_type: "TAG".to_string(),
        };
        if expr.is_empty() || expr == SUB_ALL {
            return Ok(data);
        }
        data.sub_string = expr.to_string();
        let parts: Vec<&str> = expr.split("||").collect();
        if parts.iter().all(|p| p.is_empty()) {
            return Err(SubscriptionError::Split(expr.to_string()));
        }
        for tag in parts.iter().map(|p| p.trim()).filter(|t| !t.is_empty()) {
            data.tags_set.insert(tag.to_string());
            data.code_set.insert(java_string_hash(tag));
        }
        Ok(data)
    }

    /// Subscribes to every tag.
    pub fn is_all(&self) -> bool {
        self.sub_string == SUB_ALL || self.sub_string.is_empty()
    }

    /// The store-side filter on ConsumeQueue tag codes.
    pub fn tag_filter(&self) -> TagFilter {
        if self.is_all() {
            TagFilter::All
        } else {
            TagFilter::Codes(self.code_set.iter().map(|c| i64::from(*c)).collect())
        }
    }

    /// Does a ConsumeQueue unit with this tag code match? (Java compares `(int) tagsCode`.)
    pub fn matches_code(&self, tags_code: i64) -> bool {
        // Truncation to i32 is what Java's `codeSet.contains(tagsCode.intValue())` does.
        self.is_all() || self.code_set.contains(&(tags_code as i32))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_vectors() {
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        assert_eq!(java_string_hash("TagB"), 2_598_920);
        assert_eq!(java_string_hash("*"), 42);
        assert_eq!(java_string_hash(""), 0);
        // wraps like Java int arithmetic
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn star_and_empty_match_everything() {
        for e in [None, Some(""), Some("*"), Some("  *  ")] {
            let s = SubscriptionData::parse("T", e, 0).unwrap();
            assert!(s.is_all());
            assert_eq!(s.tag_filter(), TagFilter::All);
            assert!(s.matches_code(12345));
        }
    }

    #[test]
    fn tags_with_and_without_spaces() {
        for e in [
            "TagA || TagB",
            "TagA||TagB",
            " TagA ||TagB ",
            "TagA || TagB || TagA",
        ] {
            let s = SubscriptionData::parse("T", Some(e), 7).unwrap();
            assert_eq!(
                s.tags_set.iter().map(String::as_str).collect::<Vec<_>>(),
                vec!["TagA", "TagB"],
                "{e}"
            );
            assert_eq!(
                s.code_set.iter().copied().collect::<Vec<_>>(),
                vec![2_598_919, 2_598_920]
            );
            assert!(s.matches_code(2_598_919));
            assert!(!s.matches_code(java_string_hash("TagC") as i64));
            assert_eq!(s.tag_filter(), TagFilter::Codes(vec![2_598_919, 2_598_920]));
            assert_eq!(s.sub_version, 7);
        }
        let single = SubscriptionData::parse("T", Some("TagA"), 0).unwrap();
        assert_eq!(single.code_set.len(), 1);
    }

    #[test]
    fn bad_expressions() {
        assert!(matches!(
            SubscriptionData::parse("T", Some("||"), 0),
            Err(SubscriptionError::Split(_))
        ));
        let long = "a".repeat(EXPRESSION_LEN_MAX + 1);
        assert_eq!(
            SubscriptionData::parse("T", Some(&long), 0),
            Err(SubscriptionError::TooLong)
        );
        assert!(SubscriptionData::parse("T", Some("  ||  "), 0).is_err());
        // empty pieces are skipped
        let s = SubscriptionData::parse("T", Some("TagA ||"), 0).unwrap();
        assert_eq!(s.tags_set.len(), 1);
        assert!(!s.matches_code(0));
    }
}

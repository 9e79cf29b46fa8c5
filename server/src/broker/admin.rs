//! Broker admin requests: broker config (UPDATE/GET_BROKER_CONFIG), topics
//! (UPDATE_AND_CREATE_TOPIC, DELETE_TOPIC_IN_BROKER, GET_ALL_TOPIC_CONFIG, GET_TOPIC_CONFIG),
//! subscription groups, offsets dumps and GET_BROKER_RUNTIME_INFO.
//!
//! Security (the classes of CVE-2023-33246 and CVE-2023-37582): a remote request can change only
//! the runtime settings in [`RUNTIME_ALLOWLIST`]. Every key that names a path, an address, an
//! identity or a process (`storePathRootDir`, `brokerConfigPath`, `rocketmqHome`,
//! `configBlackList`, `namesrvAddr`, `kvConfigPath`, `filterServerNums`, …) is refused with
//! NO_PERMISSION and a remark naming the key; unknown keys and bad values get INVALID_PARAMETER.
//! A request with any refused key changes nothing. Nothing here ever runs a command.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::BTreeMap;

/// Largest UPDATE_BROKER_CONFIG body accepted.
pub const CONFIG_BODY_LEN_MAX: usize = 64 * 1024;
/// Most keys one UPDATE_BROKER_CONFIG may set.
pub const CONFIG_KEYS_MAX: usize = 64;
/// Longest value accepted for any key.
pub const CONFIG_VALUE_LEN_MAX: usize = 256;

/// ResponseCode values used here.
pub mod code {
    pub const SUCCESS: i32 = 0;
    pub const SYSTEM_ERROR: i32 = 1;
    pub const NO_PERMISSION: i32 = 16;
    pub const TOPIC_NOT_EXIST: i32 = 17;
    pub const SUBSCRIPTION_GROUP_NOT_EXIST: i32 = 26;
    pub const INVALID_PARAMETER: i32 = 29;
}

/// Settings a remote UPDATE_BROKER_CONFIG may change: plain numbers, booleans and short words
/// that the broker reads while running. Nothing here names a file, a directory, an address, an
/// identity or a program.
pub const RUNTIME_ALLOWLIST: &[&str] = &[
    "brokerPermission",
    "autoCreateTopicEnable",
    "autoCreateSubscriptionGroup",
    "defaultTopicQueueNums",
    "longPollingEnable",
    "shortPollingTimeMills",
    "notifyConsumerIdsChangedEnable",
    "traceOn",
    "defaultQueryMaxNum",
    "maxMsgsNumBatch",
    "litePullMessageEnable",
    "flushConsumerOffsetInterval",
    "flushDelayOffsetInterval",
    "registerNameServerPeriod",
    "channelExpiredTimeout",
    "maxTransferBytesOnMessageInMemory",
    "maxTransferCountOnMessageInMemory",
    "maxTransferBytesOnMessageInDisk",
    "maxTransferCountOnMessageInDisk",
    "rejectTransactionMessage",
    "transactionTimeOut",
    "transactionCheckMax",
    "transactionCheckInterval",
];

/// Keys refused by name because they name a path, an address, an identity, the config file, the
/// denylist itself, or start processes. (Anything not in the allowlist is refused anyway; this list
/// exists so the remark says why.)
pub const DENIED_KEYS: &[&str] = &[
    "storePathRootDir",
    "storePathCommitLog",
    "storePathConsumeQueue",
    "storePathIndex",
    "storeCheckpoint",
    "abortFile",
    "storePathEpochFile",
    "storePathBrokerIdentity",
    "storePathDLedgerCommitLog",
    "timerStoreDir",
    "brokerConfigPath",
    "rocketmqHome",
    "configBlackList",
    "namesrvAddr",
    "kvConfigPath",
    "configStorePath",
    "filterServerNums",
    "brokerIP1",
    "brokerIP2",
    "listenPort",
    "haListenPort",
    "haMasterAddress",
    "brokerName",
    "brokerClusterName",
    "brokerId",
    "brokerRole",
    "aclEnable",
    "authConfigPath",
    "messageDelayLevel",
    "flushDiskType",
    "mappedFileSizeCommitLog",
    "mappedFileSizeConsumeQueue",
];

/// Why an UPDATE_BROKER_CONFIG (or part of it) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigRefusal {
    #[error("Can not update config in black list: {key}")]
    Denied { key: String },
    #[error("config key {key} cannot be changed at runtime")]
    NotRuntime { key: String },
    #[error("bad value for config key {key}: {reason}")]
    BadValue { key: String, reason: String },
    #[error("config body is larger than {CONFIG_BODY_LEN_MAX} bytes")]
    BodyTooLarge,
    #[error("config body has more than {CONFIG_KEYS_MAX} keys")]
    TooManyKeys,
    #[error("config body is not a properties text: {0}")]
    BadBody(String),
    #[error("config body is empty")]
    Empty,
}

impl ConfigRefusal {
    pub fn code(&self) -> i32 {
        match self {
            ConfigRefusal::Denied { .. } | ConfigRefusal::NotRuntime { .. } => code::NO_PERMISSION,
            _ => code::INVALID_PARAMETER,
        }
    }

    pub fn remark(&self) -> String {
        self.to_string()
    }
}

/// A key made safe to echo in a remark.
fn shown(key: &str) -> String {
    super::validate::shown_name(key)
}

/// Words that mark a key as naming something outside the broker's memory (a path, a host, a
/// program): refused even if a future allowlist entry matched by mistake.
fn looks_dangerous(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "path",
        "dir",
        "file",
        "home",
        "addr",
        "ip",
        "host",
        "port",
        "blacklist",
        "exec",
        "cmd",
        "command",
        "script",
        "class",
        "url",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// Checks one key and value against the policy (type checks are the config parser's job).
pub fn check_key(key: &str, value: &str) -> Result<(), ConfigRefusal> {
    if DENIED_KEYS.contains(&key) || looks_dangerous(key) {
        return Err(ConfigRefusal::Denied { key: shown(key) });
    }
    if !RUNTIME_ALLOWLIST.contains(&key) {
        return Err(ConfigRefusal::NotRuntime { key: shown(key) });
    }
    if value.len() > CONFIG_VALUE_LEN_MAX {
        return Err(ConfigRefusal::BadValue {
            key: shown(key),
            reason: format!("longer than {CONFIG_VALUE_LEN_MAX} bytes"),
        });
    }
    if value
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '\\' | '$' | '`' | ';' | '|' | '&'))
    {
        return Err(ConfigRefusal::BadValue {
            key: shown(key),
            reason: "contains a control character or one of / \\ $ ` ; | &".to_string(),
        });
    }
    Ok(())
}

/// Parses an UPDATE_BROKER_CONFIG body (Java properties text) and checks every key. All or nothing:
/// the first refused key refuses the whole request.
pub fn parse_update_body(body: &[u8]) -> Result<BTreeMap<String, String>, ConfigRefusal> {
    if body.len() > CONFIG_BODY_LEN_MAX {
        return Err(ConfigRefusal::BodyTooLarge);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ConfigRefusal::BadBody(format!("not UTF-8 ({e})")))?;
    let parsed = parse_properties_text(text);
    if parsed.len() > CONFIG_KEYS_MAX {
        return Err(ConfigRefusal::TooManyKeys);
    }
    let pairs: BTreeMap<String, String> = parsed.into_iter().collect();
    if pairs.is_empty() {
        return Err(ConfigRefusal::Empty);
    }
    // Check denied keys first so the remark names the dangerous one, whatever else is there.
    for (k, v) in &pairs {
        if let Err(e @ ConfigRefusal::Denied { .. }) = check_key(k, v) {
            return Err(e);
        }
    }
    for (k, v) in &pairs {
        check_key(k, v)?;
    }
    Ok(pairs)
}

/// Parses Java `Properties.load` text: `key=value`, `key: value` or `key value` lines, `#`/`!`
/// comments, backslash line continuations and escapes (`\t \n \r \f \uXXXX`, `\=` etc.).
/// Total (never fails, never panics): malformed escapes are kept literally. (The java-properties
/// crate panics on some byte sequences, so network input never goes through it.)
pub fn parse_properties_text(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.split(['\n', '\r']).peekable();
    while let Some(first) = lines.next() {
        let mut logical = first.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        while logical.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1 {
            logical.pop();
            match lines.next() {
                Some(next) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        out.push((unescape(key), unescape(value)));
    }
    out
}

/// Splits at the first unescaped `=`, `:` or whitespace (then skips the separator run).
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\x0c' => {
                let key = line.get(..i).unwrap_or_default();
                let rest = line.get(i..).unwrap_or_default();
                let rest = rest.trim_start_matches([' ', '\t', '\x0c']);
                let rest = rest
                    .strip_prefix(['=', ':'])
                    .map(|r| r.trim_start_matches([' ', '\t', '\x0c']))
                    .unwrap_or(rest);
                return (key, rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.clone().take(4).collect();
                match (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                {
                    Some(ch) => {
                        out.push(ch);
                        for _ in 0..4 {
                            chars.next();
                        }
                    }
                    None => out.push('u'),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// GET_BROKER_CONFIG body: `key=value\n` lines sorted by key (Java `properties2String`).
pub fn encode_properties(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    let mut s = String::new();
    for (k, v) in sorted {
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('\n');
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_keys_are_refused_with_no_permission_naming_the_key() {
        for key in [
            "storePathRootDir",
            "storePathCommitLog",
            "brokerConfigPath",
            "rocketmqHome",
            "configBlackList",
            "namesrvAddr",
            "kvConfigPath",
            "filterServerNums",
            "brokerIP1",
            "listenPort",
            "someNewDirSetting",
            "rocketmqHOME",
        ] {
            let body = format!("{key}=/tmp/evil\n");
            let e = parse_update_body(body.as_bytes()).unwrap_err();
            assert_eq!(e.code(), code::NO_PERMISSION, "{key}");
            assert!(e.remark().contains(key), "{key}: {}", e.remark());
        }
    }

    #[test]
    fn cve_2023_33246_payload_is_refused_whole() {
        // The published exploit sets filterServerNums and rocketmqHome to run a shell command.
        let body = b"filterServerNums=1\nrocketmqHome=-c $@|sh . echo touch /tmp/pwned;\nbrokerPermission=6\n";
        let e = parse_update_body(body).unwrap_err();
        assert_eq!(e.code(), code::NO_PERMISSION);
        assert!(e.remark().contains("filterServerNums") || e.remark().contains("rocketmqHome"));
    }

    #[test]
    fn cve_2023_37582_style_namesrv_keys_are_refused() {
        let e =
            parse_update_body(b"configStorePath=/home/user/.ssh/authorized_keys\n").unwrap_err();
        assert_eq!(
            e,
            ConfigRefusal::Denied {
                key: "configStorePath".into()
            }
        );
    }

    #[test]
    fn non_runtime_and_unknown_keys_are_refused() {
        let e = parse_update_body(b"messageDelayLevel=1s\n").unwrap_err();
        assert_eq!(e.code(), code::NO_PERMISSION);
        assert!(e.remark().contains("messageDelayLevel"));
        let e = parse_update_body(b"noSuchKey=1\n").unwrap_err();
        assert_eq!(
            e,
            ConfigRefusal::NotRuntime {
                key: "noSuchKey".into()
            }
        );
        // A denied key is named even when listed after an allowed one or an unknown one.
        let e = parse_update_body(b"aaa=1\nbrokerPermission=6\nstorePathRootDir=/\n").unwrap_err();
        assert_eq!(
            e,
            ConfigRefusal::Denied {
                key: "storePathRootDir".into()
            }
        );
    }

    #[test]
    fn allowed_keys_pass_and_bad_values_are_invalid_parameter() {
        let p =
            parse_update_body(b"brokerPermission=4\n# comment\nautoCreateTopicEnable = false\n")
                .unwrap();
        assert_eq!(p.get("brokerPermission").map(String::as_str), Some("4"));
        assert_eq!(
            p.get("autoCreateTopicEnable").map(String::as_str),
            Some("false")
        );
        let e = parse_update_body(b"brokerPermission=6;touch /x\n").unwrap_err();
        assert_eq!(e.code(), code::INVALID_PARAMETER);
        assert!(e.remark().contains("brokerPermission"));
        let long = format!("traceOn={}\n", "1".repeat(1000));
        assert_eq!(
            parse_update_body(long.as_bytes()).unwrap_err().code(),
            code::INVALID_PARAMETER
        );
    }

    #[test]
    fn hostile_bodies_are_bounded() {
        assert_eq!(parse_update_body(b"").unwrap_err(), ConfigRefusal::Empty);
        assert_eq!(
            parse_update_body(&vec![b'a'; CONFIG_BODY_LEN_MAX + 1]).unwrap_err(),
            ConfigRefusal::BodyTooLarge
        );
        let many: String = (0..100).map(|i| format!("k{i}=1\n")).collect();
        assert_eq!(
            parse_update_body(many.as_bytes()).unwrap_err(),
            ConfigRefusal::TooManyKeys
        );
        // Invalid UTF-8 and NULs never panic.
        let e = parse_update_body(b"\xff\xfe=\x00\n").unwrap_err();
        assert!(matches!(e, ConfigRefusal::BadBody(_)));
        let e = parse_update_body(b"traceOn=\x00\n").unwrap_err();
        assert_eq!(e.code(), code::INVALID_PARAMETER);
        let e = parse_update_body(b"stor\\u0065PathRootDir=/x\n").unwrap_err();
        assert_eq!(
            e,
            ConfigRefusal::Denied {
                key: "storePathRootDir".into()
            }
        );
    }

    #[test]
    fn properties_parser_follows_java_load() {
        let text = "# c\n! c\n a = 1\nb:2\nc 3\nd=x\\\n   y\ne\\=f=g\nh=\\u0041\\t\ni\n\r\nj=\\uZZ\nk=v\\\\\n";
        let p = parse_properties_text(text);
        let get = |k: &str| p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("a"), Some("1"));
        assert_eq!(get("b"), Some("2"));
        assert_eq!(get("c"), Some("3"));
        assert_eq!(get("d"), Some("xy"));
        assert_eq!(get("e=f"), Some("g"));
        assert_eq!(get("h"), Some("A\t"));
        assert_eq!(get("i"), Some(""));
        assert_eq!(get("j"), Some("uZZ"));
        assert_eq!(get("k"), Some("v\\"));
        assert_eq!(p.len(), 9);
        // Total on odd input.
        for odd in ["\\", "=", "\\u", "a\\", "\u{0}=\u{0}"] {
            let _ = parse_properties_text(odd);
        }
    }

    #[test]
    fn properties_text_is_sorted() {
        let s = encode_properties(&[("b".into(), "2".into()), ("a".into(), "1".into())]);
        assert_eq!(s, "a=1\nb=2\n");
    }
}

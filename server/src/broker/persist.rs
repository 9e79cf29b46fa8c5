//! Atomic, lenient persistence of the broker's JSON config files (`<storeRoot>/config/*.json`).
//!
//! Writing: the new content goes to `<name>.tmp`, which is fsynced and renamed over `<name>`; the
//! directory is fsynced afterwards. Before the rename the current file, if it parses, is copied
//! to `<name>.bak` (via `<name>.bak.tmp` + fsync + rename, so `.bak` is always a whole file; the
//! very first version is copied there too). At every instant `<name>` is either the old or the
//! new complete content, and `.bak` never shares data blocks with it.
//!
//! Reading: RocketMQ writes these files with fastjson, which is not strict JSON (unquoted integer
//! keys such as `{0:123}`, occasionally trailing commas or single quotes). [`parse_lenient`]
//! normalises those before handing the text to `serde_json`. A file that is empty or still does not
//! parse is moved aside to `<name>.corrupt` and `<name>.bak` is used instead; a corrupt file never
//! stops the broker.
//!
//! Encoding: [`JsonOut`] is a small JSON tree whose map keys can be integers, written unquoted the
//! way fastjson writes `Map<Integer, Long>` (consumerOffset.json, delayOffset.json).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// A config file could not be written. Reads never fail (see [`load_json`]).
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PersistError + 'a {
    move |source| PersistError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Points inside [`write_atomic_with`] where a test can inject a failure (simulating a crash:
/// everything done before the point is on disk, nothing after it happens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStage {
    /// `<name>.tmp` is written and fsynced; the rename has not happened.
    TempWritten,
    /// `<name>.bak` has been refreshed; the rename has not happened.
    BackupLinked,
    /// `<name>` holds the new content; the directory is not yet fsynced.
    Renamed,
}

/// `<path>` with `suffix` appended to the file name (`topics.json` → `topics.json.bak`).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically and durably, keeping the previous parseable content in
/// `<path>.bak`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    write_atomic_with(path, bytes, &mut |_| Ok(()))
}

/// [`write_atomic`] with a hook called at each [`WriteStage`]; an error from the hook aborts the
/// write at that point, as a crash would.
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    hook: &mut dyn FnMut(WriteStage) -> io::Result<()>,
) -> Result<(), PersistError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("create dir", dir))?;

    let tmp = sibling(path, ".tmp");
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        // The rename below must never expose a file whose bytes are not yet durable.
        f.sync_all().map_err(io_err("fsync", &tmp))?;
    }
    hook(WriteStage::TempWritten).map_err(io_err("write", path))?;

    refresh_backup(path)?;
    hook(WriteStage::BackupLinked).map_err(io_err("write", path))?;

    fs::rename(&tmp, path).map_err(io_err("rename", path))?;
    hook(WriteStage::Renamed).map_err(io_err("write", path))?;

    // The very first version has no predecessor to back up: keep a copy of it, so a file
    // written once and then damaged still has something to fall back to.
    let bak = sibling(path, ".bak");
    if !bak.exists() {
        copy_as(path, &bak)?;
    }
    sync_dir(dir)?;
    Ok(())
}

/// Makes `to` a whole, durable copy of `from` atomically (copy to `<to>.tmp`, fsync, rename).
/// A copy, not a hard link: a link would share the data blocks, so damage to one file (an
/// in-place write, a bad sector) would be damage to both.
fn copy_as(from: &Path, to: &Path) -> Result<(), PersistError> {
    let to_tmp = sibling(to, ".tmp");
    fs::copy(from, &to_tmp).map_err(io_err("copy", &to_tmp))?;
    File::open(&to_tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err("fsync", &to_tmp))?;
    fs::rename(&to_tmp, to).map_err(io_err("rename", to))
}

/// Keeps the current `<path>` as `<path>.bak` if it is a valid file. A corrupt current file is not
/// allowed to replace a good backup.
fn refresh_backup(path: &Path) -> Result<(), PersistError> {
    let current = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    let parses = std::str::from_utf8(&current)
        .ok()
        .map(|t| !t.trim().is_empty() && parse_lenient(t).is_ok())
        .unwrap_or(false);
    if !parses {
        return Ok(());
    }
    // The rename inside makes `.bak` switch atomically from the old backup to the new one.
    copy_as(path, &sibling(path, ".bak"))
}

fn sync_dir(dir: &Path) -> Result<(), PersistError> {
    let d = File::open(dir).map_err(io_err("open dir", dir))?;
    d.sync_all().map_err(io_err("fsync dir", dir))
}

/// Where [`load_json`] found its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    Main,
    Backup,
    /// Neither file exists or parses: start empty.
    Nothing,
}

/// The outcome of reading one config file.
#[derive(Debug)]
pub struct Loaded {
    pub value: Option<Value>,
    pub source: LoadSource,
    /// Human-readable notes on what was repaired (also logged).
    pub repairs: Vec<String>,
}

/// Reads `path` leniently, falling back to `<path>.bak`. Never fails: problems are logged and
/// reported in [`Loaded::repairs`]. A corrupt main file is renamed to `<path>.corrupt` so that the
/// next write cannot turn it into the backup and an operator can inspect it.
pub fn load_json(path: &Path) -> Loaded {
    let mut repairs = Vec::new();
    match read_parse(path) {
        Ok(Some(v)) => {
            return Loaded {
                value: Some(v),
                source: LoadSource::Main,
                repairs,
            }
        }
        Ok(None) => {}
        Err(reason) => {
            let aside = sibling(path, ".corrupt");
            let moved = fs::rename(path, &aside).is_ok();
            let msg = format!(
                "{} is unreadable ({reason}); {}",
                path.display(),
                if moved {
                    format!("moved aside to {}", aside.display())
                } else {
                    "left in place".to_string()
                }
            );
            tracing::warn!("{msg}");
            repairs.push(msg);
        }
    }
    let bak = sibling(path, ".bak");
    match read_parse(&bak) {
        Ok(Some(v)) => {
            let msg = format!(
                "loaded {} from its backup {}",
                path.display(),
                bak.display()
            );
            if !repairs.is_empty() {
                tracing::warn!("{msg}");
            }
            repairs.push(msg);
            Loaded {
                value: Some(v),
                source: LoadSource::Backup,
                repairs,
            }
        }
        Ok(None) => Loaded {
            value: None,
            source: LoadSource::Nothing,
            repairs,
        },
        Err(reason) => {
            let msg = format!(
                "backup {} is unreadable too ({reason}); starting empty",
                bak.display()
            );
            tracing::warn!("{msg}");
            repairs.push(msg);
            Loaded {
                value: None,
                source: LoadSource::Nothing,
                repairs,
            }
        }
    }
}

/// Hard cap on a config file we are willing to parse (64 MiB): a bigger file is treated as corrupt
/// rather than exhausting memory.
pub const CONFIG_FILE_LEN_MAX: u64 = 64 << 20;

/// `Ok(None)`: missing. `Ok(Some)`: parsed. `Err`: present but empty, too big or unparseable.
fn read_parse(path: &Path) -> Result<Option<Value>, String> {
    match fs::metadata(path) {
        Ok(m) if m.len() > CONFIG_FILE_LEN_MAX => return Err(format!("{} bytes", m.len())),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&bytes);
    if text.trim().is_empty() {
        return Err("empty file".to_string());
    }
    parse_lenient(&text).map(Some).map_err(|e| e.to_string())
}

/// Parses fastjson-flavoured JSON: unquoted object keys (`{0:123}`, `{a:1}`), trailing commas,
/// single-quoted strings and a leading BOM are accepted. Nesting depth is bounded by serde_json
/// (128), so hostile input cannot overflow the stack.
pub fn parse_lenient(text: &str) -> Result<Value, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(_) => serde_json::from_str(&normalize_lenient(text)),
    }
}

/// Rewrites fastjson-isms into strict JSON; strict JSON passes through unchanged. Works on bytes:
/// every structural character is ASCII and UTF-8 continuation bytes are never ASCII, so
/// multi-byte text is copied through untouched and the output stays valid UTF-8.
pub fn normalize_lenient(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len() + 16);
    let mut i = 0usize;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => i = copy_string(b, i, &mut out),
            b'\'' => i = copy_single_quoted(b, i, &mut out),
            b',' => {
                // Drop a comma that only precedes a closing bracket (or another comma).
                let next = next_non_ws(b, i + 1);
                if !matches!(b.get(next), Some(b'}') | Some(b']') | Some(b',') | None) {
                    out.push(b',');
                }
                i += 1;
            }
            c if is_bare_byte(c) => {
                let start = i;
                while b.get(i).is_some_and(|&c| is_bare_byte(c)) {
                    i += 1;
                }
                let word = b.get(start..i).unwrap_or_default();
                let is_key = b.get(next_non_ws(b, i)) == Some(&b':');
                if is_key {
                    out.push(b'"');
                }
                out.extend_from_slice(word);
                if is_key {
                    out.push(b'"');
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Only ASCII was inserted or removed at ASCII positions, so this cannot fail; fall back to
    // a lossy conversion rather than panic if that reasoning were ever wrong.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn is_bare_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'-' | b'+' | b'.')
}

fn next_non_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// Copies a double-quoted string starting at `i` verbatim; returns the index after it.
fn copy_string(b: &[u8], mut i: usize, out: &mut Vec<u8>) -> usize {
    out.push(b'"');
    i += 1;
    while let Some(&c) = b.get(i) {
        out.push(c);
        i += 1;
        if c == b'\\' {
            if let Some(&n) = b.get(i) {
                out.push(n);
                i += 1;
            }
        } else if c == b'"' {
            break;
        }
    }
    i
}

/// Converts a single-quoted string at `i` into a double-quoted one.
fn copy_single_quoted(b: &[u8], mut i: usize, out: &mut Vec<u8>) -> usize {
    out.push(b'"');
    i += 1;
    let mut closed = false;
    while let Some(&c) = b.get(i) {
        i += 1;
        match c {
            b'\'' => {
                closed = true;
                break;
            }
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => match b.get(i) {
                Some(b'\'') => {
                    out.push(b'\'');
                    i += 1;
                }
                Some(&n) => {
                    out.push(b'\\');
                    out.push(n);
                    i += 1;
                }
                None => {}
            },
            c => out.push(c),
        }
    }
    // An unterminated string stays unterminated, so the parser rejects it.
    if closed {
        out.push(b'"');
    }
    i
}

// ---------------------------------------------------------------------------------------------
// Lenient field access (fastjson writes numbers as numbers, C++ clients sometimes as strings).

/// `v[key]` as i64, accepting a number or a numeric string.
pub fn get_i64(v: &Value, key: &str) -> Option<i64> {
    value_i64(v.get(key)?)
}

/// A JSON number or numeric string as i64.
pub fn value_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX))),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `v[key]` as bool, accepting `true`/`"true"`/1.
pub fn get_bool(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

/// `v[key]` as a string (numbers are rendered).
pub fn get_str(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// DataVersion, shared by every config file.

/// RocketMQ's `DataVersion`: bumped on every change; nameservers and slaves compare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataVersion {
    pub counter: i64,
    pub state_version: i64,
    pub timestamp: i64,
}

impl DataVersion {
    pub fn new() -> Self {
        DataVersion {
            counter: 0,
            state_version: 0,
            timestamp: now_ms(),
        }
    }

    /// `nextVersion()`: counter + 1, timestamp = now.
    pub fn bump(&mut self) {
        self.counter = self.counter.saturating_add(1);
        self.timestamp = now_ms();
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        Some(DataVersion {
            counter: get_i64(v, "counter").unwrap_or(0),
            state_version: get_i64(v, "stateVersion").unwrap_or(0),
            timestamp: get_i64(v, "timestamp")?,
        })
    }

    pub fn to_json(self) -> JsonOut {
        JsonOut::obj([
            ("counter", JsonOut::Int(self.counter)),
            ("stateVersion", JsonOut::Int(self.state_version)),
            ("timestamp", JsonOut::Int(self.timestamp)),
        ])
    }
}

/// Wall-clock milliseconds since the epoch (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Encoding in the Java shapes.

/// An object key: fastjson quotes string keys and leaves integer keys bare.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonKey {
    Str(String),
    Int(i64),
}

/// A JSON tree for output, keeping insertion order (callers sort where Java sorts).
#[derive(Debug, Clone, PartialEq)]
pub enum JsonOut {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Arr(Vec<JsonOut>),
    Obj(Vec<(JsonKey, JsonOut)>),
}

/// How [`JsonOut`] is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// fastjson `toJSONString(obj, true)`: tab-indented, integer keys unquoted (config files).
    FastjsonPretty,
    /// Compact with integer keys unquoted (fastjson default for wire bodies).
    FastjsonCompact,
    /// Compact, strictly standard JSON: integer keys quoted.
    Standard,
}

impl JsonOut {
    /// An object with string keys, in the given order.
    pub fn obj<K: Into<String>, I: IntoIterator<Item = (K, JsonOut)>>(items: I) -> JsonOut {
        JsonOut::Obj(
            items
                .into_iter()
                .map(|(k, v)| (JsonKey::Str(k.into()), v))
                .collect(),
        )
    }

    pub fn str(s: impl Into<String>) -> JsonOut {
        JsonOut::Str(s.into())
    }

    pub fn render(&self, style: JsonStyle) -> String {
        let mut out = String::new();
        self.write(&mut out, style, 0);
        out
    }

    fn write(&self, out: &mut String, style: JsonStyle, depth: usize) {
        let pretty = style == JsonStyle::FastjsonPretty;
        match self {
            JsonOut::Null => out.push_str("null"),
            JsonOut::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonOut::Int(i) => out.push_str(&i.to_string()),
            JsonOut::Str(s) => push_json_str(out, s),
            JsonOut::Arr(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    if pretty {
                        newline(out, depth + 1);
                    }
                    item.write(out, style, depth + 1);
                }
                if pretty && !items.is_empty() {
                    newline(out, depth);
                }
                out.push(']');
            }
            JsonOut::Obj(items) => {
                out.push('{');
                for (n, (k, v)) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    if pretty {
                        newline(out, depth + 1);
                    }
                    match k {
                        JsonKey::Str(s) => push_json_str(out, s),
                        JsonKey::Int(i) if style == JsonStyle::Standard => {
                            push_json_str(out, &i.to_string())
                        }
                        JsonKey::Int(i) => out.push_str(&i.to_string()),
                    }
                    out.push(':');
                    v.write(out, style, depth + 1);
                }
                if pretty && !items.is_empty() {
                    newline(out, depth);
                }
                out.push('}');
            }
        }
    }
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push('\t');
    }
}

fn push_json_str(out: &mut String, s: &str) {
    // serde_json's string escaping is standard JSON and never fails for a &str.
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

/// Converts a parsed value back to [`JsonOut`] (object keys stay strings, numbers stay numbers
/// when they are integers, others become strings).
pub fn value_to_out(v: &Value) -> JsonOut {
    match v {
        Value::Null => JsonOut::Null,
        Value::Bool(b) => JsonOut::Bool(*b),
        Value::Number(n) => match value_i64(v) {
            Some(i) => JsonOut::Int(i),
            None => JsonOut::Str(n.to_string()),
        },
        Value::String(s) => JsonOut::Str(s.clone()),
        Value::Array(a) => JsonOut::Arr(a.iter().map(value_to_out).collect()),
        Value::Object(m) => JsonOut::Obj(
            m.iter()
                .map(|(k, v)| (JsonKey::Str(k.clone()), value_to_out(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_parses_java_consumer_offset_sample() {
        // Shape of a real 5.x consumerOffset.json (fastjson pretty, unquoted int keys).
        let text = "{\n\t\"offsetTable\":{\n\t\t\"TopicTest@please_rename_unique_group_name_4\":{0:37960,1:37961,2:37957,3:37958\n\t\t},\n\t\t\"%RETRY%g@g\":{0:0}\n\t},\n\t\"groupTopicMap\":{\"g\":[\"TopicTest\"]},\n\t\"dataVersion\":{\"counter\":7,\"stateVersion\":0,\"timestamp\":1700000000000}\n}";
        let v = parse_lenient(text).unwrap();
        assert_eq!(
            v["offsetTable"]["TopicTest@please_rename_unique_group_name_4"]["3"],
            json!(37958)
        );
        assert_eq!(v["offsetTable"]["%RETRY%g@g"]["0"], json!(0));
        assert_eq!(v["dataVersion"]["counter"], json!(7));
    }

    #[test]
    fn lenient_handles_trailing_commas_single_quotes_bom_and_negative_keys() {
        let text = "\u{feff}{ a : 1, 'b':'it\\'s \"x\"', -1: [1,2,], \"c,\": {x:true,},}";
        let v = parse_lenient(text).unwrap();
        assert_eq!(v["a"], json!(1));
        assert_eq!(v["b"], json!("it's \"x\""));
        assert_eq!(v["-1"], json!([1, 2]));
        assert_eq!(v["c,"]["x"], json!(true));
        let v = parse_lenient("{0:\"ü™,}\", 'é':\"x\",}").unwrap();
        assert_eq!(v["0"], json!("ü™,}"));
        assert_eq!(v["é"], json!("x"));
    }

    #[test]
    fn lenient_leaves_string_contents_alone() {
        let text = r#"{"k":"a, } ]: {0:1}", "e":"\"q\\"}"#;
        let v = parse_lenient(text).unwrap();
        assert_eq!(v["k"], json!("a, } ]: {0:1}"));
        assert_eq!(v["e"], json!("\"q\\"));
    }

    #[test]
    fn lenient_rejects_garbage_and_deep_nesting_without_panicking() {
        for bad in [
            "{",
            "}",
            "{\"a\":",
            "\u{0}\u{1}",
            "[[[[",
            "{a b c}",
            "'",
            "\"",
            ",",
        ] {
            assert!(parse_lenient(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(100_000);
        assert!(parse_lenient(&deep).is_err());
        let deep_obj = "{a:".repeat(10_000);
        assert!(parse_lenient(&deep_obj).is_err());
    }

    #[test]
    fn fastjson_rendering_round_trips_through_lenient_parse() {
        let doc = JsonOut::obj([
            ("dataVersion", DataVersion::new().to_json()),
            (
                "offsetTable",
                JsonOut::obj([(
                    "t@g",
                    JsonOut::Obj(vec![
                        (JsonKey::Int(0), JsonOut::Int(12)),
                        (JsonKey::Int(1), JsonOut::Int(-3)),
                    ]),
                )]),
            ),
            ("s", JsonOut::str("tab\t\"quote\" \u{1}\u{2} ü")),
            ("empty", JsonOut::Obj(vec![])),
            (
                "list",
                JsonOut::Arr(vec![JsonOut::Null, JsonOut::Bool(false)]),
            ),
        ]);
        let pretty = doc.render(JsonStyle::FastjsonPretty);
        assert!(pretty.contains("\t\t\t0:12,\n\t\t\t1:-3"), "{pretty}");
        let compact = doc.render(JsonStyle::FastjsonCompact);
        assert!(compact.contains("{0:12,1:-3}"), "{compact}");
        let standard = doc.render(JsonStyle::Standard);
        assert!(standard.contains("{\"0\":12,\"1\":-3}"));
        // Standard output is strict JSON; the fastjson forms need the lenient parser.
        let strict: Value = serde_json::from_str(&standard).unwrap();
        for text in [&pretty, &compact] {
            assert_eq!(parse_lenient(text).unwrap(), strict);
        }
        assert_eq!(strict["s"], json!("tab\t\"quote\" \u{1}\u{2} ü"));
    }

    #[test]
    fn write_then_load_keeps_backup_of_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config").join("topics.json");
        write_atomic(&path, b"{\"v\":1}").unwrap();
        // The first version is its own backup, in separate blocks: damaging the main file in
        // place leaves the backup intact.
        assert_eq!(fs::read(sibling(&path, ".bak")).unwrap(), b"{\"v\":1}");
        fs::write(&path, b"").unwrap();
        assert_eq!(fs::read(sibling(&path, ".bak")).unwrap(), b"{\"v\":1}");
        write_atomic(&path, b"{\"v\":1}").unwrap();
        write_atomic(&path, b"{\"v\":2}").unwrap();
        assert_eq!(fs::read(sibling(&path, ".bak")).unwrap(), b"{\"v\":1}");
        let l = load_json(&path);
        assert_eq!(l.source, LoadSource::Main);
        assert_eq!(l.value.unwrap()["v"], json!(2));
        assert!(!sibling(&path, ".tmp").exists());
    }

    #[test]
    fn crash_between_temp_write_and_rename_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consumerOffset.json");
        write_atomic(&path, b"{\"v\":1}").unwrap();
        for stage in [WriteStage::TempWritten, WriteStage::BackupLinked] {
            let r = write_atomic_with(&path, b"{\"v\":2}", &mut |s| {
                if s == stage {
                    Err(io::Error::other("simulated crash"))
                } else {
                    Ok(())
                }
            });
            assert!(r.is_err());
            // The "crashed" process left a temp file behind; the main file is the old version.
            assert!(sibling(&path, ".tmp").exists());
            let l = load_json(&path);
            assert_eq!(l.source, LoadSource::Main);
            assert_eq!(l.value.unwrap()["v"], json!(1));
        }
        // A crash after the rename: the new content is there.
        let r = write_atomic_with(&path, b"{\"v\":3}", &mut |s| {
            if s == WriteStage::Renamed {
                Err(io::Error::other("simulated crash"))
            } else {
                Ok(())
            }
        });
        assert!(r.is_err());
        assert_eq!(load_json(&path).value.unwrap()["v"], json!(3));
        // The next normal write succeeds over the leftovers.
        write_atomic(&path, b"{\"v\":4}").unwrap();
        assert_eq!(load_json(&path).value.unwrap()["v"], json!(4));
        assert!(!sibling(&path, ".tmp").exists());
    }

    #[test]
    fn corrupt_main_falls_back_to_backup_and_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subscriptionGroup.json");
        write_atomic(&path, b"{\"v\":1}").unwrap();
        write_atomic(&path, b"{\"v\":2}").unwrap();
        fs::write(&path, b"{\"v\":2, \"x\": [tru").unwrap();
        let l = load_json(&path);
        assert_eq!(l.source, LoadSource::Backup);
        assert_eq!(l.value.unwrap()["v"], json!(1));
        assert_eq!(l.repairs.len(), 2, "{:?}", l.repairs);
        assert!(sibling(&path, ".corrupt").exists());
        // Writing again must not promote the corrupt file to .bak.
        write_atomic(&path, b"{\"v\":3}").unwrap();
        assert_eq!(fs::read(sibling(&path, ".bak")).unwrap(), b"{\"v\":1}");
    }

    #[test]
    fn empty_main_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("delayOffset.json");
        let l = load_json(&path);
        assert_eq!(l.source, LoadSource::Nothing);
        assert!(l.value.is_none() && l.repairs.is_empty());
        fs::write(&path, b"  \n").unwrap();
        let l = load_json(&path);
        assert_eq!(l.source, LoadSource::Nothing);
        assert_eq!(l.repairs.len(), 1);
        // Both corrupt: still no failure.
        fs::write(&path, b"\xff\xfe{{{").unwrap();
        fs::write(sibling(&path, ".bak"), b"nope").unwrap();
        let l = load_json(&path);
        assert_eq!(l.source, LoadSource::Nothing);
        assert_eq!(l.repairs.len(), 2);
    }

    #[test]
    fn lenient_field_access() {
        let v = json!({"a": 5, "b": "6", "c": "x", "t": "true", "f": 0, "big": u64::MAX});
        assert_eq!(get_i64(&v, "a"), Some(5));
        assert_eq!(get_i64(&v, "b"), Some(6));
        assert_eq!(get_i64(&v, "c"), None);
        assert_eq!(get_i64(&v, "big"), Some(i64::MAX));
        assert_eq!(get_bool(&v, "t"), Some(true));
        assert_eq!(get_bool(&v, "f"), Some(false));
        assert_eq!(get_str(&v, "a").as_deref(), Some("5"));
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        fn key() -> impl Strategy<Value = JsonKey> {
            prop_oneof![
                "[a-zA-Z0-9%|_@-]{0,12}".prop_map(JsonKey::Str),
                any::<i64>().prop_map(JsonKey::Int),
            ]
        }

        fn tree() -> impl Strategy<Value = JsonOut> {
            let leaf = prop_oneof![
                Just(JsonOut::Null),
                any::<bool>().prop_map(JsonOut::Bool),
                any::<i64>().prop_map(JsonOut::Int),
                ".{0,16}".prop_map(JsonOut::Str),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(JsonOut::Arr),
                    prop::collection::vec((key(), inner), 0..6).prop_map(|items| {
                        // JSON objects keep one value per key: drop later duplicates.
                        let mut seen = std::collections::HashSet::new();
                        JsonOut::Obj(
                            items
                                .into_iter()
                                .filter(|(k, _)| {
                                    seen.insert(match k {
                                        JsonKey::Str(s) => s.clone(),
                                        JsonKey::Int(i) => i.to_string(),
                                    })
                                })
                                .collect(),
                        )
                    }),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// Every fastjson rendering parses back (leniently) to the standard rendering.
            #[test]
            fn fastjson_output_round_trips(t in tree()) {
                let strict: Value = serde_json::from_str(&t.render(JsonStyle::Standard)).unwrap();
                prop_assert_eq!(&parse_lenient(&t.render(JsonStyle::FastjsonPretty)).unwrap(), &strict);
                prop_assert_eq!(&parse_lenient(&t.render(JsonStyle::FastjsonCompact)).unwrap(), &strict);
            }

            /// Arbitrary text never panics the lenient parser, and strict JSON is read as-is.
            #[test]
            fn lenient_parse_is_total(text in ".{0,200}") {
                let _ = parse_lenient(&text);
                let _ = normalize_lenient(&text);
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    prop_assert_eq!(parse_lenient(&text).unwrap(), v);
                }
            }

            /// Mangled fastjson (bytes dropped or changed) never panics either.
            #[test]
            fn damaged_files_never_panic(t in tree(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
                let mut bytes = t.render(JsonStyle::FastjsonPretty).into_bytes();
                if !bytes.is_empty() {
                    let i = cut.index(bytes.len());
                    bytes[i] ^= flip;
                    bytes.truncate(i.max(1));
                }
                let _ = parse_lenient(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}

//! Lenient JSON reading for RocketMQ bodies: fastjson writes integer map keys unquoted
//! (`{"offsetTable":{0:12}}`, route `brokerAddrs`), which serde_json refuses. `parse_lenient`
//! quotes bare object keys and then parses strictly.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use serde_json::Value;

/// Nesting bound: a hostile body cannot recurse deeper than this.
pub const DEPTH_MAX: usize = 128;

/// Parses JSON that may have unquoted object keys (numbers or bare identifiers).
pub fn parse_lenient(input: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(input).map_err(|e| format!("not UTF-8: {e}"))?;
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(first) => {
            let fixed = quote_bare_keys(text)?;
            serde_json::from_str(&fixed).map_err(|e| format!("{first}; after quoting keys: {e}"))
        }
    }
}

/// Rewrites `{0:1, abc : 2}` to `{"0":1, "abc" : 2}`; strings are copied untouched.
fn quote_bare_keys(text: &str) -> Result<String, String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Ctx {
        Object,
        Array,
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut stack: Vec<Ctx> = Vec::new();
    let mut chars = text.char_indices().peekable();
    // true right after '{' or ',' inside an object: the next token is a key
    let mut expect_key = false;
    while let Some((_, c)) = chars.next() {
        match c {
            '"' => {
                expect_key = false;
                out.push(c);
                let mut escaped = false;
                for (_, s) in chars.by_ref() {
                    out.push(s);
                    if escaped {
                        escaped = false;
                    } else if s == '\\' {
                        escaped = true;
                    } else if s == '"' {
                        break;
                    }
                }
            }
            '{' => {
                if stack.len() >= DEPTH_MAX {
                    return Err("JSON nested too deeply".to_string());
                }
                stack.push(Ctx::Object);
                expect_key = true;
                out.push(c);
            }
            '[' => {
                if stack.len() >= DEPTH_MAX {
                    return Err("JSON nested too deeply".to_string());
                }
                stack.push(Ctx::Array);
                expect_key = false;
                out.push(c);
            }
            '}' | ']' => {
                stack.pop();
                expect_key = false;
                out.push(c);
            }
            ',' => {
                expect_key = stack.last() == Some(&Ctx::Object);
                out.push(c);
            }
            c if c.is_whitespace() => out.push(c),
            c if expect_key && (c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') => {
                out.push('"');
                out.push(c);
                while let Some(&(_, n)) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '-' || n == '_' || n == '.' {
                        out.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push('"');
                expect_key = false;
            }
            _ => {
                expect_key = false;
                out.push(c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_numeric_keys() {
        let v =
            parse_lenient(br#"{"offsetTable":{"t@g":{0:12,1:-3}},"x":[{5:"a,b:{c"}]}"#).unwrap();
        assert_eq!(v["offsetTable"]["t@g"]["0"], 12);
        assert_eq!(v["offsetTable"]["t@g"]["1"], -3);
        assert_eq!(v["x"][0]["5"], "a,b:{c");
    }

    #[test]
    fn strict_json_unchanged_and_garbage_is_err() {
        assert_eq!(
            parse_lenient(br#"{"a":[1,2,{"b":"\"{0:1}"}]}"#).unwrap()["a"][2]["b"],
            "\"{0:1}"
        );
        assert!(parse_lenient(b"{0:").is_err());
        assert!(parse_lenient(&[0xff, 0xfe]).is_err());
        let deep = "[".repeat(10_000);
        assert!(parse_lenient(deep.as_bytes()).is_err());
    }
}

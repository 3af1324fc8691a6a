//! A tool result's content blocks, read in the answer's one pass.
//!
//! Each block is kept as its members, every value as the upstream's JSON text: the blocks go
//! back out as they came (members in order, values byte for byte), and the first text block's
//! text, almost always the tool's JSON result escaped into a string, is found without parsing the
//! blocks a second time. Decoding that text is the gateway's largest piece of work per call
//! (issue 8: ~90 escaped quotes in a 1.8 KB contact, where serde_json's string decoder spends
//! ~190 instructions per escape); [`decode`] copies the runs between escapes whole.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

/// One content block: its members in the upstream's order, values as JSON text.
#[derive(Debug)]
pub(super) struct Block<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A member name borrowed from the answer unless it has escapes (serde fills a bare `Cow<str>`
/// with an owned copy: an allocation per member per call).
#[derive(serde::Deserialize)]
struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'a> Block<'a> {
    fn member(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    fn is_text(&self) -> bool {
        self.member("type")
            .and_then(|t| decode(t.get()))
            .is_some_and(|t| t == "text")
    }
}

/// The text of the first `text` block, as [`crate::mcp::ToolResult`] reports it: the first block
/// of type `text`, and its text if that is a string.
pub(super) fn first_text(blocks: &[Block<'_>]) -> Option<String> {
    let text = blocks.iter().find(|b| b.is_text())?.member("text")?;
    decode(text.get()).map(Cow::into_owned)
}

impl<'de: 'a, 'a> Deserialize<'de> for Block<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Block<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a content block (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((Name(name), value)) =
                    map.next_entry::<Name<'de>, &'de RawValue>()?
                {
                    members.push((name, value));
                }
                Ok(Block(members))
            }
        }
        d.deserialize_map(Members)
    }
}

impl Serialize for Block<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Decodes a JSON string literal (quotes included) that serde_json has already read as valid
/// JSON: `None` when `literal` is not a string. The runs between escapes are copied whole; a
/// `\u` escape (and its surrogate pairs) is left to serde_json.
fn decode(literal: &str) -> Option<Cow<'_, str>> {
    let body = literal.strip_prefix('"')?.strip_suffix('"')?;
    let bytes = body.as_bytes();
    let Some(mut at) = next_backslash(bytes, 0) else {
        return Some(Cow::Borrowed(body));
    };
    // Bytes, not a `String`: `push_str` and `push(char)` check character boundaries and widths
    // at every escape; one UTF-8 check of the whole result is cheaper.
    let mut out = Vec::with_capacity(bytes.len());
    let mut run = 0;
    loop {
        out.extend_from_slice(&bytes[run..at]);
        let unescaped = match bytes.get(at + 1)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return serde_json::from_str::<String>(literal).ok().map(Cow::Owned),
            _ => return None,
        };
        out.push(unescaped);
        run = at + 2;
        match next_backslash(bytes, run) {
            Some(next) => at = next,
            None => {
                out.extend_from_slice(&bytes[run..]);
                // Runs of a `str` cut at ASCII bytes, and ASCII: always UTF-8.
                return String::from_utf8(out).ok().map(Cow::Owned);
            }
        }
    }
}

/// The index of the first `\` in `bytes` at or after `from`. A tool's JSON escaped into a
/// string has an escaped quote every few bytes (`{\"id\":\"1\",...`), where `memchr`'s vector
/// search costs ~40 instructions a call however short the run: eight bytes at a time in a
/// `u64` first, then `memchr` for a run longer than `NEAR`.
fn next_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    const NEAR: usize = 32;
    const ONES: u64 = u64::MAX / 255; // 0x0101…01
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    let end = bytes.len().min(from.saturating_add(NEAR));
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8).filter(|_| at + 8 <= end) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        // A zero byte in `x` is a backslash in the chunk; the lowest flagged byte is exact
        // (a borrow only flags bytes above a real zero).
        let x = u64::from_le_bytes(word) ^ BACKSLASHES;
        let zero = x.wrapping_sub(ONES) & !x & (ONES << 7);
        if zero != 0 {
            return Some(at + zero.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    memchr::memchr(b'\\', rest).map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every escape JSON has, decoded as serde_json decodes it.
    #[test]
    fn decodes_as_serde_json_does() {
        let cases = [
            r#""""#,
            r#""plain text, no escapes""#,
            r#""{\"id\":\"1\",\"name\":\"Ada \\\"the\\\" Countess\"}""#,
            r#""tab\there\nline\r\n\/slash\\ \b\f""#,
            r#""ends with an escape\"""#,
            r#""\"starts with one""#,
            r#""caf\u00e9 and a pair \ud83d\ude00 and \" too""#,
            r#""ünïcödé — text \"quoted\" ✓""#,
            // Runs longer than the bytes looked at one by one, before and between escapes.
            r#""a run of more than sixteen bytes\"then one of more than sixteen more\"x""#,
            r#""\"\\\"\n""#,
        ];
        for literal in cases {
            let want: String = serde_json::from_str(literal).unwrap();
            assert_eq!(decode(literal).as_deref(), Some(want.as_str()), "{literal}");
        }
    }

    /// Every start and backslash position, on both sides of each 8-byte chunk and of the
    /// hand-over to `memchr`, finds what a plain search finds.
    #[test]
    fn the_next_backslash_is_found_wherever_it_is() {
        for len in 0..80 {
            for slash in (0..len).map(Some).chain([None]) {
                let mut bytes = vec![b'a'; len];
                if let Some(i) = slash {
                    bytes[i] = b'\\';
                    // Bytes next to a backslash that a sloppy bit trick could flag.
                    if i + 1 < len {
                        bytes[i + 1] = b']';
                    }
                    if i > 0 {
                        bytes[i - 1] = 0x5d;
                    }
                }
                for from in 0..=len {
                    let want = bytes[from..]
                        .iter()
                        .position(|&b| b == b'\\')
                        .map(|i| from + i);
                    assert_eq!(next_backslash(&bytes, from), want, "{len} {slash:?} {from}");
                }
            }
        }
    }

    #[test]
    fn only_strings_decode() {
        for not_a_string in ["5", "null", "{}", "[\"a\"]", "true", r#""\ud800""#] {
            assert_eq!(decode(not_a_string), None, "{not_a_string}");
        }
        assert!(matches!(decode(r#""no escapes""#), Some(Cow::Borrowed(_))));
    }

    fn blocks(content: &str) -> Vec<Block<'_>> {
        serde_json::from_str(content).unwrap()
    }

    #[test]
    fn blocks_go_back_out_as_they_came() {
        let content = r#"[{"type":"image","data":"aGk=","mimeType":"image/png"},{"type":"text","text":"{\"a\":[1, 2.50]}","annotations":{"audience":["user"],"priority":0.5},"_meta":{"x":null}}]"#;
        let read = blocks(content);
        assert_eq!(serde_json::to_string(&read).unwrap(), content);
        // Whitespace between tokens goes; values are kept byte for byte.
        let spaced = "[ { \"type\" : \"text\" , \"text\" : \"a\\u00e9\" } ]";
        assert_eq!(
            serde_json::to_string(&blocks(spaced)).unwrap(),
            r#"[{"type":"text","text":"a\u00e9"}]"#
        );
    }

    #[test]
    fn the_first_text_block_gives_the_text() {
        let content = r#"[{"type":"image","data":"aGk="},{"type":"text","text":"first \"one\""},{"type":"text","text":"second"}]"#;
        assert_eq!(
            first_text(&blocks(content)).as_deref(),
            Some("first \"one\"")
        );
        assert_eq!(
            first_text(&blocks(r#"[{"type":"image","data":"aGk="}]"#)),
            None
        );
        // The first text block decides, even when its text is not a string.
        assert_eq!(
            first_text(&blocks(
                r#"[{"type":"text","text":null},{"type":"text","text":"b"}]"#
            )),
            None
        );
        assert_eq!(
            first_text(&blocks(r#"[{"type":"t\u0065xt","text":"escaped type"}]"#)).as_deref(),
            Some("escaped type")
        );
    }

    #[test]
    fn member_names_borrow_from_the_answer_unless_escaped() {
        let read = blocks(r#"[{"type":"text","t\u0065xt":"a"}]"#);
        assert!(matches!(read[0].0[0].0, Cow::Borrowed("type")));
        assert!(matches!(&read[0].0[1].0, Cow::Owned(n) if n == "text"));
    }

    #[test]
    fn a_block_must_be_an_object() {
        assert!(serde_json::from_str::<Vec<Block>>(r#"["text"]"#).is_err());
        assert!(serde_json::from_str::<Vec<Block>>(r#"[{"type":"text","text":"a"]"#).is_err());
    }
}

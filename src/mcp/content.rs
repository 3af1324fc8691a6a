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
    let Some(mut at) = memchr::memchr(b'\\', body.as_bytes()) else {
        return Some(Cow::Borrowed(body));
    };
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    loop {
        // `at` is the index of an ASCII byte, so both slices fall on character boundaries.
        out.push_str(&rest[..at]);
        let unescaped = match rest.as_bytes().get(at + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return serde_json::from_str::<String>(literal).ok().map(Cow::Owned),
            _ => return None,
        };
        out.push(unescaped);
        rest = &rest[at + 2..];
        match memchr::memchr(b'\\', rest.as_bytes()) {
            Some(next) => at = next,
            None => {
                out.push_str(rest);
                return Some(Cow::Owned(out));
            }
        }
    }
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
        ];
        for literal in cases {
            let want: String = serde_json::from_str(literal).unwrap();
            assert_eq!(decode(literal).as_deref(), Some(want.as_str()), "{literal}");
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

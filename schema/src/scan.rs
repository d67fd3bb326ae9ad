//! The fast path of decoding: a plain audit `Event` object read straight into [`Envelope`] by a
//! scanner that knows its fields, instead of serde's field-by-field visitor.
//!
//! It gives up (returns `None`) on anything it is not sure of: a wrapper's field, an escaped key,
//! a duplicate field, a number that is not a plain `i32`, a surrogate escape, nesting deeper than
//! [`MAX_NESTING`], or any syntax error. The caller then parses the document with serde_json,
//! which decides and words the error. So whenever this succeeds, serde_json would have accepted
//! the document and produced the same [`Envelope`]; `tests` checks that on every sample and real
//! log line and on damaged copies of them.
//!
//! Values it does not keep are still checked as JSON (strings, escapes, numbers, literals,
//! nesting), as serde_json checks what it ignores.

use std::borrow::Cow;

use crate::model::{AuthzAnnotations, Envelope, Metadata, ObjectRef, Raw, Status, Str, UserInfo};

/// Objects and arrays nested deeper than this inside a value are left to serde_json (whose own
/// limit is 128).
const MAX_NESTING: u32 = 64;

/// `None`: not decided here.
type Maybe<T> = Option<T>;

/// Reads `text` as a plain Event; `None` when serde_json has to decide.
pub(crate) fn envelope(text: &str) -> Maybe<Envelope<'_>> {
    let mut scan = Scan::new(text);
    let env = scan.record(|scan, seen, env: &mut Envelope<'_>, key| {
        match key {
            "kind" => scan.field(seen, 0, &mut env.kind, Scan::string),
            "apiVersion" => scan.field(seen, 1, &mut env.api_version, Scan::string),
            "level" => scan.field(seen, 2, &mut env.level, Scan::string),
            "auditID" => scan.field(seen, 3, &mut env.audit_id, Scan::string),
            "stage" => scan.field(seen, 4, &mut env.stage, Scan::string),
            "requestURI" => scan.field(seen, 5, &mut env.request_uri, Scan::string),
            "verb" => scan.field(seen, 6, &mut env.verb, Scan::string),
            "user" => scan.field(seen, 7, &mut env.user, Scan::user),
            "impersonatedUser" => scan.field(seen, 8, &mut env.impersonated_user, Scan::user),
            "sourceIPs" => scan.field(seen, 9, &mut env.source_ips, Scan::strings),
            "userAgent" => scan.field(seen, 10, &mut env.user_agent, Scan::string),
            "objectRef" => scan.field(seen, 11, &mut env.object_ref, Scan::object_ref),
            "responseStatus" => scan.field(seen, 12, &mut env.response_status, Scan::status),
            "requestObject" => scan.field(seen, 13, &mut env.request_object, Scan::raw),
            "responseObject" => scan.field(seen, 14, &mut env.response_object, Scan::raw),
            "requestReceivedTimestamp" => {
                scan.field(seen, 15, &mut env.request_received_timestamp, Scan::string)
            }
            "stageTimestamp" => scan.field(seen, 16, &mut env.stage_timestamp, Scan::string),
            "timestamp" => scan.field(seen, 17, &mut env.timestamp, Scan::string),
            "metadata" => scan.field(seen, 18, &mut env.metadata, Scan::metadata),
            "annotations" => scan.field(seen, 19, &mut env.annotations, |scan| {
                let (raw, authz) = scan.annotations()?;
                env.authz = Some(authz);
                Some(raw)
            }),
            // A wrapper (EventList, GKE, AKS, CloudWatch, a shipper's record): serde's path.
            "items" | "protoPayload" | "insertId" | "operation" | "resource" | "labels"
            | "properties" | "resourceId" | "logEvents" | "logGroup" | "log" | "message" => None,
            _ => scan.skip(0),
        }
    })?;
    scan.end()?;
    Some(env)
}

/// Reads an Event's `annotations` for the authorizer's two; `None` when serde_json has to decide.
pub(crate) fn authz_annotations(text: &str) -> Maybe<AuthzAnnotations<'_>> {
    let mut scan = Scan::new(text);
    let authz = scan.authz()?;
    scan.end()?;
    Some(authz)
}

/// Which fields of one object were read, so that a duplicate is left to serde_json (which
/// rejects it).
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn first(&mut self, field: u32) -> Maybe<()> {
        let bit = 1 << field;
        (self.0 & bit == 0).then(|| self.0 |= bit)
    }
}

struct Scan<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    fn peek(&self) -> Maybe<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn next(&mut self) -> Maybe<u8> {
        self.skip_whitespace();
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    /// Only whitespace is left.
    fn end(&mut self) -> Maybe<()> {
        self.skip_whitespace();
        (self.at == self.bytes.len()).then_some(())
    }

    /// Consumes `null` if it comes next.
    fn null(&mut self) -> Maybe<bool> {
        self.skip_whitespace();
        if self.peek()? != b'n' {
            return Some(false);
        }
        self.literal(b"null")?;
        Some(true)
    }

    fn literal(&mut self, word: &[u8]) -> Maybe<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// One field of an object: `null` leaves it `None`, like serde's `Option`.
    fn field<T>(
        &mut self,
        seen: &mut Seen,
        index: u32,
        slot: &mut Option<T>,
        read: impl FnOnce(&mut Self) -> Maybe<T>,
    ) -> Maybe<()> {
        seen.first(index)?;
        if !self.null()? {
            *slot = Some(read(self)?);
        }
        Some(())
    }

    /// An object read into a `T`: `member` reads the value of each key into it.
    fn record<T: Default>(
        &mut self,
        mut member: impl FnMut(&mut Self, &mut Seen, &mut T, &str) -> Maybe<()>,
    ) -> Maybe<T> {
        let mut value = T::default();
        let mut seen = Seen::default();
        self.object(|scan, key| member(scan, &mut seen, &mut value, key))?;
        Some(value)
    }

    /// An object, calling `member` with the scanner at each value; `member` consumes the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &str) -> Maybe<()>) -> Maybe<()> {
        if self.next()? != b'{' {
            return None;
        }
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            member(self, key)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// An array, calling `item` with the scanner at each value.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Maybe<()>) -> Maybe<()> {
        if self.next()? != b'[' {
            return None;
        }
        self.skip_whitespace();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A string, borrowed unless it has escapes.
    fn string(&mut self) -> Maybe<Str<'a>> {
        self.skip_whitespace();
        let start = self.at;
        if self.peek()? != b'"' {
            return None;
        }
        let (end, escaped) = self.string_end(start + 1)?;
        self.at = end + 1;
        if escaped {
            // Rare: serde_json unescapes the whole literal, quotes included.
            let literal = self.text.get(start..self.at)?;
            return serde_json::from_str::<String>(literal)
                .ok()
                .map(|s| Str(Cow::Owned(s)));
        }
        Some(Str(Cow::Borrowed(self.text.get(start + 1..end)?)))
    }

    fn strings(&mut self) -> Maybe<Vec<Str<'a>>> {
        let mut items = Vec::new();
        self.array(|scan| {
            items.push(scan.string()?);
            Some(())
        })?;
        Some(items)
    }

    /// Any value, as its text.
    fn raw(&mut self) -> Maybe<Raw<'a>> {
        self.skip_whitespace();
        let start = self.at;
        self.skip(0)?;
        Some(Raw(self.text.get(start..self.at)?))
    }

    /// Where the string whose contents start at `at` ends (the index of its closing quote), and
    /// whether it has escapes. Control characters are not allowed in JSON strings.
    #[inline(always)]
    fn string_end(&self, mut at: usize) -> Maybe<(usize, bool)> {
        let bytes = self.bytes;
        let mut escaped = false;
        loop {
            // Eight bytes at a time while none is a quote, a backslash or a control character.
            while let Some(chunk) = bytes.get(at..at + 8) {
                let word = u64::from_le_bytes(chunk.try_into().ok()?);
                let special = special_bytes(word);
                if special != 0 {
                    at += (special.trailing_zeros() / 8) as usize;
                    break;
                }
                at += 8;
            }
            match *bytes.get(at)? {
                b'"' => return Some((at, escaped)),
                b'\\' => {
                    escaped = true;
                    at = self.escape_end(at + 1)?;
                }
                0..=0x1f => return None,
                _ => at += 1,
            }
        }
    }

    /// Past the escape whose letter is at `at`. `\u` escapes of surrogates are left to serde_json,
    /// which checks their pairing.
    fn escape_end(&self, at: usize) -> Maybe<usize> {
        match *self.bytes.get(at)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(at + 1),
            b'u' => {
                let hex = std::str::from_utf8(self.bytes.get(at + 1..at + 5)?).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                let code = u16::from_str_radix(hex, 16).ok()?;
                (!(0xD800..=0xDFFF).contains(&code)).then_some(at + 5)
            }
            _ => None,
        }
    }

    /// Past any JSON value, checking it, `depth` levels down from the document. Nested values are
    /// walked in one loop, with one bit per open container (set for an object), rather than by
    /// recursion: request and response bodies are most of what is skipped.
    fn skip(&mut self, depth: u32) -> Maybe<()> {
        let room = MAX_NESTING.checked_sub(depth)?;
        let mut objects: u64 = 0;
        let mut open: u32 = 0;
        loop {
            // A value.
            self.skip_whitespace();
            let container = match self.peek()? {
                b'"' => {
                    let (end, _) = self.string_end(self.at + 1)?;
                    self.at = end + 1;
                    None
                }
                b'{' => Some(true),
                b'[' => Some(false),
                b't' => self.literal(b"true").map(|()| None)?,
                b'f' => self.literal(b"false").map(|()| None)?,
                b'n' => self.literal(b"null").map(|()| None)?,
                b'-' | b'0'..=b'9' => self.number().map(|()| None)?,
                _ => return None,
            };
            if let Some(object) = container {
                if open >= room {
                    return None;
                }
                self.at += 1;
                self.skip_whitespace();
                let close = if object { b'}' } else { b']' };
                if self.peek()? != close {
                    objects = (objects << 1) | u64::from(object);
                    open += 1;
                    if object {
                        self.key()?;
                    }
                    continue;
                }
                self.at += 1;
            }
            // After a value: the next member or item, or the end of containers.
            loop {
                if open == 0 {
                    return Some(());
                }
                let in_object = objects & 1 == 1;
                match (self.next()?, in_object) {
                    (b',', true) => {
                        self.key()?;
                        break;
                    }
                    (b',', false) => break,
                    (b'}', true) | (b']', false) => {
                        objects >>= 1;
                        open -= 1;
                    }
                    _ => return None,
                }
            }
        }
    }

    /// Past an object's key and its colon; a key with escapes is left to serde_json.
    fn key(&mut self) -> Maybe<&'a str> {
        if self.next()? != b'"' {
            return None;
        }
        let (end, escaped) = self.string_end(self.at)?;
        if escaped {
            return None;
        }
        let key = self.text.get(self.at..end)?;
        self.at = end + 1;
        if self.next()? != b':' {
            return None;
        }
        Some(key)
    }

    /// Past a number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Maybe<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Maybe<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    /// A plain integer that fits an `i32`, as serde_json reads one into an `i32`; anything else
    /// (a fraction, an exponent, a leading zero, `-0`) is serde_json's to accept or reject.
    fn int(&mut self) -> Maybe<i32> {
        self.skip_whitespace();
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = self.at;
        self.digits();
        let len = self.at - digits;
        // serde_json reads `-0` as a float.
        let leading_zero = self.bytes.get(digits) == Some(&b'0') && (len > 1 || digits > start);
        if len == 0 || len > 10 || leading_zero {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        self.text.get(start..self.at)?.parse().ok()
    }

    /// The authorizer's two annotations of an `annotations` object.
    fn authz(&mut self) -> Maybe<AuthzAnnotations<'a>> {
        self.record(
            |scan, seen, authz: &mut AuthzAnnotations<'a>, key| match key {
                "authorization.k8s.io/decision" => {
                    scan.field(seen, 0, &mut authz.decision, Scan::string)
                }
                "authorization.k8s.io/reason" => {
                    scan.field(seen, 1, &mut authz.reason, Scan::string)
                }
                _ => scan.skip(1),
            },
        )
    }

    /// An Event's `annotations`, as its text and with the authorizer's two read on the way, so
    /// that they are not scanned a second time.
    fn annotations(&mut self) -> Maybe<(Raw<'a>, AuthzAnnotations<'a>)> {
        self.skip_whitespace();
        let start = self.at;
        let authz = self.authz()?;
        Some((Raw(self.text.get(start..self.at)?), authz))
    }

    fn user(&mut self) -> Maybe<UserInfo<'a>> {
        self.record(|scan, seen, user: &mut UserInfo<'a>, key| match key {
            "username" => scan.field(seen, 0, &mut user.username, Scan::string),
            "uid" => scan.field(seen, 1, &mut user.uid, Scan::string),
            "groups" => scan.field(seen, 2, &mut user.groups, Scan::strings),
            "extra" => scan.field(seen, 3, &mut user.extra, Scan::raw),
            _ => scan.skip(1),
        })
    }

    fn object_ref(&mut self) -> Maybe<ObjectRef<'a>> {
        self.record(|scan, seen, object: &mut ObjectRef<'a>, key| match key {
            "resource" => scan.field(seen, 0, &mut object.resource, Scan::string),
            "subresource" => scan.field(seen, 1, &mut object.subresource, Scan::string),
            "namespace" => scan.field(seen, 2, &mut object.namespace, Scan::string),
            "name" => scan.field(seen, 3, &mut object.name, Scan::string),
            "apiGroup" => scan.field(seen, 4, &mut object.api_group, Scan::string),
            "apiVersion" => scan.field(seen, 5, &mut object.api_version, Scan::string),
            _ => scan.skip(1),
        })
    }

    fn status(&mut self) -> Maybe<Status<'a>> {
        self.record(|scan, seen, status: &mut Status<'a>, key| match key {
            "code" => scan.field(seen, 0, &mut status.code, Scan::int),
            "status" => scan.field(seen, 1, &mut status.status, Scan::string),
            "reason" => scan.field(seen, 2, &mut status.reason, Scan::string),
            "message" => scan.field(seen, 3, &mut status.message, Scan::string),
            _ => scan.skip(1),
        })
    }

    fn metadata(&mut self) -> Maybe<Metadata<'a>> {
        self.record(|scan, seen, metadata: &mut Metadata<'a>, key| match key {
            "creationTimestamp" => {
                scan.field(seen, 0, &mut metadata.creation_timestamp, Scan::string)
            }
            _ => scan.skip(1),
        })
    }
}

/// A word with the high bit set in each byte that is `"`, `\` or below 0x20 (and possibly in
/// bytes above the first such byte, which only the lowest set bit is used for).
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// Every line of the sample logs and of the real captures next to the repository, and each
    /// whole `.json` capture (some are pretty-printed), with each item of the lists among them.
    fn documents() -> Vec<String> {
        let root = crate::package_dir(env!("CARGO_MANIFEST_DIR")).join("..");
        let real = root.join("../shared/real-audit-logs");
        let mut files: Vec<PathBuf> = Vec::new();
        for dir in [
            root.join("sample-logs"),
            real.clone(),
            real.join("falco"),
            real.join("audit2rbac"),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("directory entry").path();
                if matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("log" | "json")
                ) {
                    files.push(path);
                }
            }
        }
        files.sort();
        let mut docs = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a readable log");
            let whole = file.extension().is_some_and(|e| e == "json");
            let pieces: Vec<String> = if whole {
                vec![text]
            } else {
                text.lines().map(str::to_owned).collect()
            };
            for piece in pieces {
                if let Ok(list) = serde_json::from_str::<Envelope<'_>>(&piece)
                    && let Some(items) = list.items
                {
                    docs.extend(items.iter().map(|raw| raw.get().to_owned()));
                }
                docs.push(piece);
            }
        }
        docs
    }

    /// Whenever the scanner decides, serde_json agrees on every field.
    fn agrees(text: &str) -> bool {
        let Some(mut fast) = envelope(text) else {
            return false;
        };
        let slow: Envelope<'_> = serde_json::from_str(text).unwrap_or_else(|e| {
            panic!("the scanner accepted what serde_json rejects ({e}): {text}")
        });
        // The authorizer's annotations the scanner read on the way are what serde_json reads
        // from the annotations' text.
        let read_on_the_way = fast.authz.take();
        assert_eq!(
            read_on_the_way.is_some(),
            slow.annotations.is_some(),
            "{text}"
        );
        if let (Some(fast), Some(raw)) = (read_on_the_way, slow.annotations) {
            let slow: AuthzAnnotations<'_> = serde_json::from_str(raw.get()).expect("annotations");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text}");
        }
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text}");
        true
    }

    #[test]
    fn every_plain_event_of_the_sample_and_real_logs_reads_as_serde_reads_it() {
        let docs = documents();
        let events = docs
            .iter()
            .filter(|d| {
                serde_json::from_str::<Envelope<'_>>(d)
                    .is_ok_and(|e| e.audit_id.is_some() && e.items.is_none())
            })
            .count();
        let decided = docs.iter().filter(|d| agrees(d)).count();
        assert!(events > 200, "only {events} events found");
        assert_eq!(
            decided, events,
            "the scanner left plain events to serde_json"
        );
    }

    #[test]
    fn damaged_events_are_read_as_serde_reads_them_or_left_to_it() {
        let docs = documents();
        let replacements = [
            "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "0", "-", "e", ".", "n", "\u{1}", "\\u",
            "\\ud800", "1e5", "null", "\"a\":1,",
        ];
        let (mut tried, mut decided) = (0, 0);
        for doc in docs.iter().filter(|d| d.len() < 4096).step_by(3).take(200) {
            let stride = (doc.len() / 30).max(1);
            for at in (0..doc.len()).step_by(stride) {
                if !doc.is_char_boundary(at) || !doc.is_char_boundary(at + 1) {
                    continue;
                }
                let mut variants = vec![doc[..at].to_owned()];
                for r in replacements {
                    variants.push(format!("{}{r}{}", &doc[..at], &doc[at + 1..]));
                    variants.push(format!("{}{r}{}", &doc[..at], &doc[at..]));
                }
                for v in variants {
                    tried += 1;
                    decided += usize::from(agrees(&v));
                }
            }
        }
        assert!(
            tried > 50_000 && decided > tried / 10,
            "{decided} of {tried}"
        );
    }

    #[test]
    fn annotations_read_as_serde_reads_them() {
        let mut decided = 0;
        for doc in documents() {
            let Some(raw) = envelope(&doc).and_then(|e| e.annotations) else {
                continue;
            };
            let fast = authz_annotations(raw.get()).expect("plain annotations");
            let slow: AuthzAnnotations<'_> = serde_json::from_str(raw.get()).expect("valid");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
            decided += 1;
        }
        assert!(decided > 100, "{decided}");
        for text in [
            r#"{"authorization.k8s.io/decision":"allow","authorization.k8s.io/decision":"x"}"#,
            r#"{"authorization.k8s.io/reason":1}"#,
            r#"{"authorization.k8s.io\/reason":"x"}"#,
        ] {
            assert!(authz_annotations(text).is_none(), "{text}");
        }
    }

    #[test]
    fn what_serde_would_judge_differently_is_left_to_it() {
        for text in [
            r#"{"auditID":"a","verb":"get","verb":"list"}"#,
            r#"{"auditID":"a","user":{"username":"x","username":"y"}}"#,
            r#"{"auditID":"a","responseStatus":{"code":200.0}}"#,
            r#"{"auditID":"a","responseStatus":{"code":2e2}}"#,
            r#"{"auditID":"a","responseStatus":{"code":0200}}"#,
            r#"{"auditID":"a","responseStatus":{"code":-0}}"#,
            r#"{"auditID":"a","responseStatus":{"code":3000000000}}"#,
            r#"{"auditID":"a","responseStatus":{"code":"200"}}"#,
            r#"{"audit\u0049D":"a"}"#,
            r#"{"auditID":"a","userAgent":"\ud83d\ude00"}"#,
            r#"{"auditID":"a","sourceIPs":["10.0.0.1",null]}"#,
            r#"{"auditID":"a","verb":"get"} x"#,
            r#"{"auditID":"a","verb":"get",}"#,
            r#"{"auditID":"a","verb":"g	t"}"#,
            r#"{"auditID":"a","items":[]}"#,
            r#"{"auditID":"a","log":"{}"}"#,
            r#"["auditID"]"#,
        ] {
            assert!(envelope(text).is_none(), "{text}");
        }
        let deep = format!(
            r#"{{"auditID":"a","requestObject":{}1{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(envelope(&deep).is_none());
    }

    #[test]
    fn escapes_and_nulls_read_as_serde_reads_them() {
        for text in [
            r#"{"auditID":"a\"b","userAgent":"k\\u\/\n\u00e9\t","verb":null}"#,
            r#" { "auditID" : "a" , "user" : { "username" : "u", "groups" : [ ] } } "#,
            r#"{"auditID":"a","responseStatus":{"code":-7,"metadata":{"x":[1.5e-3,true,false,-0]}}}"#,
            r#"{"auditID":"a","requestObject":{"a":[{"b":"\u00e9"},-12.5E+3,null]}}"#,
            r#"{"auditID":"ünï","objectRef":{"name":"ça","uid":"1"}}"#,
        ] {
            assert!(agrees(text), "{text}");
        }
    }
}

//! The differential check of vfplex's model of Go's JSON decoder
//! (`vfplex_config::caseless`) against the real decoder (`fuzz/go/decode.go`,
//! a Go program that reports which keys `encoding/json` delivers to which
//! struct field). The model must predict, for every field a CNI plugin could
//! have, how many keys of an object Go delivers to it and which value wins;
//! and where Go would deliver two, vfplex must refuse the document. Used by
//! the differential test (`tests/go_view.rs`) and the `go_view` fuzz target.

use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Map, Value};
use vfplex_config::caseless;

/// Field names asked about: the keys CNI plugins and vfplex's policy read,
/// and short ones the non-ASCII foldings reach (K, S, I).
pub const FIELDS: &[&str] = &[
    "type",
    "ipam",
    "runtimeConfig",
    "args",
    "prevResult",
    "deviceID",
    "pciBusID",
    "dataDir",
    "kubeconfig",
    "resolvConf",
    "logFile",
    "device",
    "capabilities",
    "name",
    "plugins",
    "k",
    "s",
    "i",
    "kis",
];

/// A JSON document as the decoder walks it: an object keeps every key in
/// order, duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    Object(Vec<(String, Tree)>),
    Other(Value),
}

impl Tree {
    /// Parse `bytes`; `None` where serde (and so vfplex) refuses the text.
    pub fn parse(bytes: &[u8]) -> Option<Tree> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let t = TreeSeed.deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(t)
    }

    /// The value serde keeps: of duplicate keys, the last value.
    pub fn to_value(&self) -> Value {
        match self {
            Tree::Other(v) => v.clone(),
            Tree::Object(pairs) => {
                let mut m = Map::new();
                for (k, v) in pairs {
                    m.insert(k.clone(), v.to_value());
                }
                Value::Object(m)
            }
        }
    }
}

struct TreeSeed;

impl<'de> DeserializeSeed<'de> for TreeSeed {
    type Value = Tree;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TreeSeed {
    type Value = Tree;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Tree, E> {
        Ok(Tree::Other(Value::Bool(b)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Tree, E> {
        Ok(Tree::Other(Value::from(n)))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Tree, E> {
        Ok(Tree::Other(Value::from(n)))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Tree, E> {
        Ok(Tree::Other(Value::from(n)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Tree, E> {
        Ok(Tree::Other(Value::String(s.to_string())))
    }

    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Other(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut out = Vec::new();
        while let Some(t) = seq.next_element_seed(TreeSeed)? {
            out.push(t.to_value());
        }
        Ok(Tree::Other(Value::Array(out)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            out.push((k, map.next_value_seed(TreeSeed)?));
        }
        Ok(Tree::Object(out))
    }
}

/// The model: the keys of `obj` Go delivers to field `name` (those whose
/// `caseless::fold` is the name's): how many, and the value of the last.
pub fn model_field<'a>(obj: &'a [(String, Tree)], name: &str) -> (usize, Option<&'a Tree>) {
    let want = caseless::fold(name);
    let hits: Vec<&Tree> = obj
        .iter()
        .filter(|(k, _)| caseless::fold(k) == want)
        .map(|(_, v)| v)
        .collect();
    (hits.len(), hits.last().copied())
}

/// The real decoder, as a running `decode` program.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Go's version: "go1.19.8".
    pub version: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What Go says of one object: per field asked, the keys delivered and the
/// last value; `None` where it refuses the document.
pub type Answer = Option<Vec<(usize, Option<Value>)>>;

impl Peer {
    /// Start the built `decode` program.
    pub fn start(binary: &Path) -> io::Result<Peer> {
        let mut child = Command::new(binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("decode: no pipes"));
        };
        let mut stdout = BufReader::new(stdout);
        let mut first = String::new();
        stdout.read_line(&mut first)?;
        let hello: Value = serde_json::from_str(&first).map_err(io::Error::other)?;
        let version = hello["version"]
            .as_str()
            .filter(|v| v.starts_with("go"))
            .ok_or_else(|| io::Error::other(format!("decode said {first:?}")))?
            .to_string();
        Ok(Peer {
            child,
            stdin,
            stdout,
            version,
        })
    }

    /// How Go reads the object at `path` of `doc` into `fields`.
    pub fn ask(&mut self, doc: &str, path: &[&str], fields: &[&str]) -> io::Result<Answer> {
        let req = json!({"doc": doc, "path": path, "fields": fields});
        writeln!(self.stdin, "{req}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(io::Error::other("decode exited"));
        }
        let a: Value = serde_json::from_str(&line).map_err(io::Error::other)?;
        if a.get("err").is_some() {
            return Ok(None);
        }
        let fields = a["fields"].as_array().cloned().unwrap_or_default();
        Ok(Some(
            fields
                .iter()
                .map(|f| {
                    let n = f["n"].as_u64().unwrap_or_default() as usize;
                    // The value's own text, parsed here as the model parsed
                    // the document: the same digits give the same number.
                    let last = f["last"]
                        .as_str()
                        .and_then(|t| serde_json::from_str(t).ok());
                    (n, last)
                })
                .collect(),
        ))
    }
}

/// Check `doc` against the real decoder: along every path of [`FIELDS`] to
/// an object (three deep), the model predicts each field's keys and winning
/// value, and where Go delivers two keys to one field vfplex's `decode`
/// refuses the document. The first disagreement, described; `None` when
/// they agree (or vfplex and Go both refuse the text).
pub fn differ(peer: &mut Peer, doc: &[u8]) -> io::Result<Option<String>> {
    let (Some(tree), Ok(text)) = (Tree::parse(doc), std::str::from_utf8(doc)) else {
        return Ok(None);
    };
    let accepted = caseless::decode(doc, "doc").is_ok();
    let mut todo: Vec<(Vec<&str>, &Tree)> = vec![(Vec::new(), &tree)];
    while let Some((path, node)) = todo.pop() {
        let Tree::Object(obj) = node else {
            continue;
        };
        let Some(answer) = peer.ask(text, &path, FIELDS)? else {
            return Ok(Some(format!("Go refuses the object at {path:?} of {text}")));
        };
        for (name, (n, last)) in FIELDS.iter().zip(answer) {
            let (m, model_last) = model_field(obj, name);
            if n != m {
                return Ok(Some(format!(
                    "{}: at {path:?}, Go delivers {n} keys to field {name:?}, the model {m}: {text}",
                    peer.version
                )));
            }
            if n > 1 && accepted {
                return Ok(Some(format!(
                    "{}: at {path:?}, Go delivers {n} keys to {name:?} and vfplex accepts {text}",
                    peer.version
                )));
            }
            let go_last: Option<Value> = last;
            if go_last != model_last.map(Tree::to_value) {
                return Ok(Some(format!(
                    "{}: at {path:?}, field {name:?} is {go_last:?} to Go, {:?} to the model: {text}",
                    peer.version,
                    model_last.map(Tree::to_value)
                )));
            }
            if let Some(next) = model_last.filter(|_| path.len() < 3) {
                let mut p = path.clone();
                p.push(name);
                todo.push((p, next));
            }
        }
    }
    Ok(None)
}

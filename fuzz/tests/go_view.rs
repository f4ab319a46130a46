//! The differential test of vfplex's model of Go's JSON decoder against the
//! real one: `fuzz/go/decode.go` is built with every Go on the machine (the
//! test command installs one for the Kubernetes kit; `VFPLEX_GO` names
//! another), and thousands of generated objects — fold-equal duplicate keys
//! (Kelvin sign, long s, dotted and dotless i, case), exact duplicates,
//! nesting, odd Unicode — must read the same to the model and to Go, and
//! vfplex must refuse every one in which Go delivers two keys to one field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use vfplex_fuzz::go_view::{differ, model_field, Peer, Tree, FIELDS};

/// Every `go` here: `VFPLEX_GO`, the one on PATH, Debian's versioned ones.
fn go_binaries() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::env::var_os("VFPLEX_GO")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("go");
        if p.is_file() {
            out.push(p);
            break;
        }
    }
    for e in std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path().join("bin/go");
        if e.file_name().to_string_lossy().starts_with("go-") && p.is_file() {
            out.push(p);
        }
    }
    let mut seen = Vec::new();
    out.retain(|p| {
        let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let new = !seen.contains(&real);
        seen.push(real);
        new
    });
    out
}

/// `fuzz/go/decode.go` built with `go` into `dir`.
fn build(go: &Path, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("go/decode.go");
    let out = dir.join("decode");
    let st = Command::new(go)
        .args(["build", "-o"])
        .arg(&out)
        .arg(&src)
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GO111MODULE", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .status()
        .expect("go runs");
    assert!(
        st.success(),
        "{} cannot build {}",
        go.display(),
        src.display()
    );
    out
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Letters that fold onto ASCII for Go (some versions), and others that
/// fold among themselves or not at all.
const ODD: &[char] = &[
    '\u{212A}', '\u{017F}', '\u{0130}', '\u{0131}', 'é', 'É', 'ß', 'ẞ', 'ǅ', 'ǆ', 'Ǆ', 'Σ', 'σ',
    'ς', 'ﬀ', '\u{2126}', 'ω', '\u{212B}', 'å', 'Å', '\u{0345}', 'ͅ', '\u{1E9E}', '😀', '\u{0301}',
];

/// A key: mostly a field name with its letters' case flipped and some
/// replaced by a letter Go folds onto them; sometimes odd Unicode.
fn key(r: &mut Rng) -> String {
    if r.below(8) == 0 {
        return (0..1 + r.below(4)).map(|_| *r.pick(ODD)).collect();
    }
    let base = *r.pick(FIELDS);
    base.chars()
        .map(|c| match (c.to_ascii_lowercase(), r.below(10)) {
            ('k', 0..=2) => '\u{212A}',
            ('s', 0..=2) => '\u{017F}',
            ('i', 0) => '\u{0130}',
            ('i', 1) => '\u{0131}',
            (_, 3..=6) => c.to_ascii_uppercase(),
            (_, 7) => *r.pick(ODD),
            _ => c,
        })
        .collect()
}

/// A JSON text: an object of 1-5 keys whose values are distinct numbers,
/// strings or (up to depth 3) objects of the same kind.
fn doc(r: &mut Rng, depth: usize, counter: &mut u64) -> String {
    let n = 1 + r.below(5);
    let mut parts = Vec::new();
    for _ in 0..n {
        let k = key(r);
        *counter += 1;
        let v = match r.below(6) {
            0 | 1 if depth < 3 => doc(r, depth + 1, counter),
            2 => format!("\"v{counter}\""),
            3 => format!("[{counter}]"),
            _ => counter.to_string(),
        };
        parts.push(format!("{}:{v}", serde_json::to_string(&k).unwrap()));
    }
    format!("{{{}}}", parts.join(","))
}

#[test]
#[ignore = "needs Go (the test command installs it): scripts/test.sh runs it (--include-ignored)"]
fn the_model_of_gos_decoder_agrees_with_go() {
    let gos = go_binaries();
    assert!(
        !gos.is_empty(),
        "no Go here: scripts/test.sh installs golang-go (or set VFPLEX_GO)"
    );
    let dir = tempfile::tempdir().unwrap();
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/go_view");
    for (i, go) in gos.iter().enumerate() {
        let bin = build(go, &dir.path().join(i.to_string()));
        let mut peer = Peer::start(&bin).unwrap();
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let mut counter = 0;
        let mut docs: Vec<String> = (0..4000).map(|_| doc(&mut r, 0, &mut counter)).collect();
        for e in std::fs::read_dir(&seeds).unwrap().flatten() {
            docs.push(std::fs::read_to_string(e.path()).unwrap());
        }
        let (mut collisions, mut refused) = (0, 0);
        for d in &docs {
            if let Some(problem) = differ(&mut peer, d.as_bytes()).unwrap() {
                panic!("{problem}");
            }
            refused += usize::from(vfplex_config::caseless::decode(d.as_bytes(), "d").is_err());
            if let Some(Tree::Object(obj)) = Tree::parse(d.as_bytes()) {
                collisions += usize::from(FIELDS.iter().any(|f| model_field(&obj, f).0 > 1));
            }
        }
        eprintln!(
            "{} ({}): {} documents agree; {collisions} deliver two keys to one field at the \
             top, {refused} refused by vfplex",
            peer.version,
            go.display(),
            docs.len()
        );
        // Not vacuous: the generator reaches the cases that matter.
        assert!(
            collisions > 100 && refused >= collisions,
            "{collisions} / {refused}"
        );
    }
}

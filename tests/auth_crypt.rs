//! `{crypt}` (src/auth/crypt.rs) against libxcrypt itself, through Python's
//! `crypt.crypt` (which Roundup calls): random passwords (ASCII, long, non-ASCII),
//! salts and work factors for every format, and settings that crypt(3) refuses.
//! Needs python3 with the `crypt` module (Python < 3.13).

mod require;

use roundup_xmlrpc::auth::crypt::{crypt, ALPHABET};
use std::io::Write;
use std::process::{Command, Stdio};

const PY: &str = r#"
import sys, warnings
warnings.simplefilter("ignore")
import crypt
for line in sys.stdin:
    pw_hex, setting = line.rstrip("\n").split("\t")
    try:
        r = crypt.crypt(bytes.fromhex(pw_hex).decode("utf-8"), setting)
    except Exception:
        r = None
    print("!NONE" if r is None or r.startswith("*") else r)
"#;

fn python_crypt_available() -> bool {
    let ok = Command::new("python3")
        .args(["-W", "ignore", "-c", "import crypt"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        require::missing("python3 with the crypt module (Python < 3.13)");
    }
    ok
}

/// libxcrypt's answers for (password, setting) pairs, `None` where it fails.
fn libxcrypt(cases: &[(String, String)]) -> Vec<Option<String>> {
    let mut child = Command::new("python3")
        .args(["-c", PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut input = String::new();
    for (pw, setting) in cases {
        let hex: String = pw.bytes().map(|b| format!("{b:02x}")).collect();
        input.push_str(&format!("{hex}\t{setting}\n"));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("python3 runs");
    writer.join().expect("writer").expect("write to python3");
    assert!(out.status.success(), "python3 failed");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<Option<String>> = text
        .lines()
        .map(|l| (l != "!NONE").then(|| l.to_string()))
        .collect();
    assert_eq!(lines.len(), cases.len());
    lines
}

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A salt of up to `max` characters (random length).
    fn salt_upto(&mut self, max: u64) -> String {
        let len = self.below(max + 1) as usize;
        self.salt(len)
    }
    fn salt(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(ALPHABET[self.below(64) as usize]))
            .collect()
    }
    fn password(&mut self) -> String {
        let len = match self.below(4) {
            0 => self.below(9),        // DES's 8 characters and less
            1 => 9 + self.below(24),   // past DES, BSDi folds the rest in
            2 => 33 + self.below(100), // past MD5's 16-byte blocks and bcrypt's 72
            _ => self.below(6),
        } as usize;
        (0..len)
            .map(|_| match self.below(10) {
                0 => ['é', 'ß', '中', '\u{7f}', '€'][self.below(5) as usize],
                1 => char::from(b' ' + self.below(16) as u8),
                _ => char::from(ALPHABET[self.below(64) as usize]),
            })
            .collect()
    }
    /// The i-th setting: cycling through the formats, with random work factors.
    fn setting(&mut self, i: usize) -> String {
        match i % 6 {
            0 => self.salt(2),
            1 => {
                let count = 1 + self.below(300) as u32;
                let mut s = String::from("_");
                for k in 0..4 {
                    s.push(char::from(ALPHABET[((count >> (6 * k)) & 0x3f) as usize]));
                }
                s + &self.salt(4)
            }
            2 => format!("$1${}$", self.salt_upto(10)),
            3 => format!("$sha1${}${}$", 1 + self.below(40), self.salt_upto(19)),
            4 => match self.below(3) {
                0 => format!("$5${}$", self.salt_upto(19)),
                1 => format!("$5$rounds={}${}$", self.below(1500), self.salt(8)),
                _ => format!("$5$rounds=1000${}$", self.salt_upto(19)),
            },
            _ => match self.below(2) {
                0 => format!("$6${}$", self.salt_upto(19)),
                _ => format!("$6$rounds={}${}$", 1000 + self.below(200), self.salt(16)),
            },
        }
    }
}

#[test]
fn random_passwords_salts_and_rounds_match_libxcrypt() {
    if !python_crypt_available() {
        return;
    }
    let mut g = Gen(0x5eed_1234_abcd_ef01);
    let cases: Vec<(String, String)> = (0..600)
        .map(|i| {
            let pw = g.password();
            (pw, g.setting(i))
        })
        .collect();
    let want = libxcrypt(&cases);
    let mut mismatches = Vec::new();
    for ((pw, setting), want) in cases.iter().zip(&want) {
        let got = crypt(pw.as_bytes(), setting);
        if &got != want {
            mismatches.push(format!(
                "crypt({pw:?}, {setting:?}): ours {got:?}, libxcrypt {want:?}"
            ));
        }
        // A stored hash verifies against its own output, as Roundup checks it.
        if let Some(stored) = want {
            assert_eq!(
                crypt(pw.as_bytes(), stored).as_deref(),
                Some(stored.as_str())
            );
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn refused_settings_are_refused_like_libxcrypt() {
    if !python_crypt_available() {
        return;
    }
    let settings = [
        "a",
        "!!",
        "a!",
        "*0",
        "_",
        "_J9..",
        "_J9..sal",
        "_J9..sa!t",
        "_....salt",
        "$1",
        "$x$",
        "$sha1$$abc$",
        "$sha1$0$abc$",
        "$sha1$x$abc$",
        "$sha1$007$abc$",
        "$sha1$5$$",
        "$sha1$5$abc",
        "$sha1$5",
        "$5$rounds=$x$",
        "$5$rounds=x$x$",
        "$6$rounds=-1$x$",
        "$5$rounds=999$x$",
        "$6$rounds=1000000000$x$",
        "$1$",
        "$1$toolongsalt$",
    ];
    let cases: Vec<(String, String)> = settings
        .iter()
        .map(|s| ("sekrit".to_string(), s.to_string()))
        .collect();
    let want = libxcrypt(&cases);
    for ((pw, setting), want) in cases.iter().zip(&want) {
        if want.is_none() {
            assert_eq!(crypt(pw.as_bytes(), setting), None, "{setting:?}");
        } else {
            assert_eq!(&crypt(pw.as_bytes(), setting), want, "{setting:?}");
        }
    }
    // A NUL cannot reach crypt(3) (Python raises): never a match.
    assert_eq!(crypt(b"sek\0rit", "ab"), None);
}

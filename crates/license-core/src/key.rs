//! Licence keys: 160 random bits in Crockford base32, with three check symbols, shown as
//! seven dash-separated groups of five (`XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`).
//!
//! Check symbols: the first is Luhn mod 32 over the 32 data symbols (catches every
//! single mistyped symbol and most swaps of neighbours), the next two are the top ten
//! bits of SHA-256 over the data symbols (catches other slips with odds of 1 in 1024).
//! Parsing is forgiving the way Crockford intends: case-insensitive, `O` read as `0`,
//! `I` and `L` as `1`, dashes and spaces ignored.

use std::fmt;
use std::sync::LazyLock;

use ring::digest;

/// Symbols of Crockford base32.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const DATA_SYMBOLS: usize = 32;
const CHECK_SYMBOLS: usize = 3;
const GROUP: usize = 5;

static CROCKFORD: LazyLock<data_encoding::Encoding> = LazyLock::new(|| {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str(std::str::from_utf8(ALPHABET).unwrap_or_default());
    spec.translate.from.push_str("abcdefghjkmnpqrstvwxyzoOiIlL");
    spec.translate.to.push_str("ABCDEFGHJKMNPQRSTVWXYZ000111");
    spec.encoding().unwrap_or_else(|_| data_encoding::BASE32_NOPAD.clone())
});

/// Why a string is not a licence key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Wrong number of symbols.
    #[error("a licence key has 35 symbols (7 groups of 5); this one has {0}")]
    Length(usize),
    /// A character outside Crockford base32.
    #[error("a licence key uses only 0-9 and A-Z without I, L, O and U")]
    Alphabet,
    /// The check symbols do not match: most likely a typo.
    #[error("the licence key's check symbols do not match: check it for typos")]
    Checksum,
}

/// A well-formed licence key in its canonical form. `Debug` shows only the prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct LicenseKey(String);

impl LicenseKey {
    /// A new random key.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let mut random = [0u8; 20];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)?;
        let data = CROCKFORD.encode(&random);
        Ok(Self::from_data(&data))
    }

    /// Parses what a person typed or pasted.
    pub fn parse(input: &str) -> Result<Self, KeyError> {
        let compact: String = input.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')).collect();
        if !compact.is_ascii() {
            return Err(KeyError::Alphabet);
        }
        let n = compact.len();
        if n != DATA_SYMBOLS + CHECK_SYMBOLS {
            return Err(KeyError::Length(n));
        }
        // Decoding through the spec validates the alphabet and applies the translations.
        let (data, check) = compact.split_at(DATA_SYMBOLS);
        let bytes = CROCKFORD.decode(data.as_bytes()).map_err(|_| KeyError::Alphabet)?;
        let canonical_data = CROCKFORD.encode(&bytes);
        let check: String = check
            .chars()
            .map(|c| match c.to_ascii_uppercase() {
                'O' => Ok('0'),
                'I' | 'L' => Ok('1'),
                u if ALPHABET.contains(&(u as u8)) => Ok(u),
                _ => Err(KeyError::Alphabet),
            })
            .collect::<Result<_, _>>()?;
        if check != check_symbols(&canonical_data) {
            return Err(KeyError::Checksum);
        }
        Ok(Self::from_data(&canonical_data))
    }

    fn from_data(data: &str) -> Self {
        let all = format!("{data}{}", check_symbols(data));
        let grouped = all
            .as_bytes()
            .chunks(GROUP)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("-");
        Self(grouped)
    }

    /// The canonical form (what is shown to the customer and digested).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first group: not secret, lets people tell keys apart.
    pub fn prefix(&self) -> &str {
        &self.0[..GROUP]
    }
}

impl fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LicenseKey({}-…)", self.prefix())
    }
}

/// Characters a key the original service issued may have (imported keys).
pub const IMPORTED_KEY_CHARS: std::ops::RangeInclusive<usize> = 8..=200;
/// Most characters of a key shown as its prefix (a new key's first group).
const PREFIX_CHARS: usize = GROUP;

/// A key as a holder presents it: one of ours (canonical), or one the original service
/// issued and `gateway import licenses` brought over, exactly as sent. `Debug` shows only
/// the prefix.
#[derive(Clone, PartialEq, Eq)]
pub enum PresentedKey {
    /// A well-formed Event Bridge key.
    Issued(LicenseKey),
    /// Any other printable string of 8 to 200 characters, with the reason it is not one
    /// of ours (a [`KeyError::Checksum`] most likely means a typo in one of ours).
    Imported(String, KeyError),
}

impl PresentedKey {
    /// Reads a key as sent: ours when it parses as one, else an imported key when it is
    /// 8 to 200 printable characters, else the reason it is not one of ours.
    pub fn parse(input: &str) -> Result<Self, KeyError> {
        match LicenseKey::parse(input) {
            Ok(key) => Ok(PresentedKey::Issued(key)),
            Err(e) if is_importable(input) => Ok(PresentedKey::Imported(input.to_owned(), e)),
            Err(e) => Err(e),
        }
    }

    /// The form that is digested: the canonical form of ours, an imported key as sent.
    pub fn as_str(&self) -> &str {
        match self {
            PresentedKey::Issued(key) => key.as_str(),
            PresentedKey::Imported(key, _) => key,
        }
    }

    /// The characters kept in the clear: a new key's first group; for an imported key as
    /// many characters, but never more than a quarter of it.
    pub fn prefix(&self) -> String {
        match self {
            PresentedKey::Issued(key) => key.prefix().to_owned(),
            PresentedKey::Imported(key, _) => {
                let n = key.chars().count();
                key.chars().take(PREFIX_CHARS.min(n / 4)).collect()
            }
        }
    }
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey({}…)", self.prefix())
    }
}

/// True for a string the original service may have issued as a key: 8 to 200 printable
/// characters (no control characters).
pub fn is_importable(input: &str) -> bool {
    IMPORTED_KEY_CHARS.contains(&input.chars().count()) && !input.chars().any(char::is_control)
}

fn value(symbol: u8) -> u32 {
    ALPHABET.iter().position(|&s| s == symbol).unwrap_or(0) as u32
}

fn check_symbols(data: &str) -> String {
    let n = 32u32;
    let mut sum = 0u32;
    let mut factor = 2u32;
    for &symbol in data.as_bytes().iter().rev() {
        let addend = factor * value(symbol);
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / n + addend % n;
    }
    let luhn = ((n - sum % n) % n) as usize;
    let hash = digest::digest(&digest::SHA256, data.as_bytes());
    let top10 = (u16::from(hash.as_ref()[0]) << 2) | (u16::from(hash.as_ref()[1]) >> 6);
    let bytes = [
        ALPHABET[luhn],
        ALPHABET[usize::from(top10 >> 5)],
        ALPHABET[usize::from(top10 & 31)],
    ];
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_keys_are_grouped_and_parse_back() {
        let key = LicenseKey::generate().unwrap();
        let s = key.as_str();
        assert_eq!(s.len(), 41);
        assert_eq!(s.split('-').count(), 7);
        assert!(s.split('-').all(|g| g.len() == 5));
        assert_eq!(LicenseKey::parse(s).unwrap(), key);
        assert_eq!(LicenseKey::parse(&s.to_lowercase().replace('-', " ")).unwrap(), key);
        assert_ne!(LicenseKey::generate().unwrap(), key);
        assert!(!format!("{key:?}").contains(&s[6..]));
    }

    #[test]
    fn crockford_lookalikes_are_read_as_digits() {
        let key = LicenseKey::generate().unwrap();
        let lookalike: String = key
            .as_str()
            .chars()
            .map(|c| match c {
                '0' => 'o',
                '1' => 'l',
                other => other,
            })
            .collect();
        assert_eq!(LicenseKey::parse(&lookalike).unwrap(), key);
    }

    #[test]
    fn refuses_wrong_length_and_alphabet() {
        assert_eq!(LicenseKey::parse("ABCDE").unwrap_err(), KeyError::Length(5));
        assert_eq!(LicenseKey::parse("").unwrap_err(), KeyError::Length(0));
        let key = LicenseKey::generate().unwrap();
        let bad = key.as_str().replacen(|c: char| c.is_ascii_alphanumeric(), "U", 1);
        assert_eq!(LicenseKey::parse(&bad).unwrap_err(), KeyError::Alphabet);
    }

    #[test]
    fn presented_keys_are_ours_or_imported_or_garbage() {
        let key = LicenseKey::generate().unwrap();
        let lower = key.as_str().to_lowercase();
        assert_eq!(PresentedKey::parse(&lower).unwrap(), PresentedKey::Issued(key.clone()));
        assert_eq!(PresentedKey::parse(&lower).unwrap().as_str(), key.as_str());

        let old = PresentedKey::parse("lic_9f8e7d6c5b4a").unwrap();
        assert_eq!(old.as_str(), "lic_9f8e7d6c5b4a");
        assert_eq!(old.prefix(), "lic_", "at most a quarter of the key");
        assert!(!format!("{old:?}").contains("9f8e"));
        assert_eq!(PresentedKey::parse("12345678").unwrap().prefix(), "12");
        let long = "x".repeat(200);
        assert_eq!(PresentedKey::parse(&long).unwrap().prefix(), "xxxxx");

        assert_eq!(PresentedKey::parse("typo").unwrap_err(), KeyError::Length(4));
        assert_eq!(PresentedKey::parse("").unwrap_err(), KeyError::Length(0));
        assert!(PresentedKey::parse(&"x".repeat(201)).is_err());
        assert!(PresentedKey::parse("abc\u{7}defghij").is_err());
        assert!(PresentedKey::parse("abcdefgh\n").is_err());

        // A typo in one of ours is looked up (it may be an old key), and says so.
        let mut typo: Vec<u8> = key.as_str().bytes().collect();
        typo[0] = if typo[0] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(typo).unwrap();
        assert!(matches!(
            PresentedKey::parse(&typo).unwrap(),
            PresentedKey::Imported(_, KeyError::Checksum)
        ));
    }

    proptest::proptest! {
        #[test]
        fn every_single_symbol_typo_is_caught(pos in 0usize..35, replacement in 0usize..32) {
            let key = LicenseKey::generate().unwrap();
            let mut symbols: Vec<u8> = key.as_str().bytes().filter(|&b| b != b'-').collect();
            proptest::prop_assume!(symbols[pos] != ALPHABET[replacement]);
            symbols[pos] = ALPHABET[replacement];
            let typo = String::from_utf8(symbols).unwrap();
            proptest::prop_assert_eq!(LicenseKey::parse(&typo).unwrap_err(), KeyError::Checksum);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = LicenseKey::parse(&s);
        }
    }
}

//! Random link codes and share ids: base62, from the operating system's random source.

use viralglobe_protocol::input::LINK_CODE_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` base62 characters, each uniform (bytes of 248 and above are drawn again, so no
/// character is likelier than another): 5.95 bits each.
fn base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 32];
    while out.len() < len {
        // The OS's random source failing is not something a server can go on without.
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        for &b in &bytes {
            if b < 248 && out.len() < len {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    out
}

/// A link code: [`LINK_CODE_LEN`] characters, 65 random bits, so codes cannot be enumerated.
pub(crate) fn new_code() -> String {
    base62(LINK_CODE_LEN)
}

/// A share id for a link, drawn apart from its code: share ids are shown on the live feed, and
/// knowing one must not give the link's code.
pub(crate) fn new_share_id() -> String {
    format!("link-{}", base62(12))
}

/// 32 random bytes.
pub(crate) fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the operating system's random source");
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_base62_of_the_fixed_length_and_differ() {
        let codes: std::collections::HashSet<String> = (0..1000).map(|_| new_code()).collect();
        assert_eq!(codes.len(), 1000);
        for code in &codes {
            viralglobe_protocol::input::check_link_code(code).expect("a valid code");
        }
        // Every character turns up: the alphabet is used whole.
        let seen: std::collections::HashSet<char> = codes.iter().flat_map(|c| c.chars()).collect();
        assert_eq!(seen.len(), 62);
    }
}

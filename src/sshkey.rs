//! OpenSSH public keys and their SHA256 fingerprints, written as `ssh-keygen -l` writes them,
//! and the key that authenticated a connection, read from sshd's ExposeAuthInfo file.

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Key types sshd accepts for public-key authentication.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return None;
    }
    for &b in bytes.get(..bytes.len() - padding)? {
        let v = u32::try_from(ALPHABET.iter().position(|&a| a == b)?).ok()?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xFF).ok()?);
        }
    }
    Some(out)
}

fn encode_base64_unpadded(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b =
            [chunk.first(), chunk.get(1), chunk.get(2)].map(|b| u32::from(b.copied().unwrap_or(0)));
        let n = (b[0] << 16) | (b[1] << 8) | b[2];
        for i in 0..=chunk.len() {
            let index = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap_or(0);
            out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'A')));
        }
    }
    out
}

/// `TYPE BASE64 [comment]` -> the key's SHA256 fingerprint, if it is a well-formed key whose
/// blob names the same type.
pub fn fingerprint_of(text: &str) -> Option<String> {
    let mut words = text.split_ascii_whitespace();
    let kind = words.next()?;
    let blob = decode_base64(words.next()?)?;
    if !KEY_TYPES.contains(&kind) {
        return None;
    }
    let len = usize::try_from(u32::from_be_bytes(blob.get(..4)?.try_into().ok()?)).ok()?;
    if blob.get(4..4 + len)? != kind.as_bytes() {
        return None;
    }
    Some(format!(
        "SHA256:{}",
        encode_base64_unpadded(&Sha256::digest(&blob))
    ))
}

/// The fingerprint of the public key that authenticated, from the content of the file that
/// sshd names in SSH_USER_AUTH (`publickey ssh-ed25519 AAAA...` lines).
/// `SHA256:` and 43 unpadded base64 characters, as `fingerprint_of` writes it.
pub fn is_fingerprint(text: &str) -> bool {
    text.strip_prefix("SHA256:").is_some_and(|b64| {
        b64.len() == 43
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    })
}

pub fn authenticated_fingerprint(user_auth: &str) -> Option<String> {
    user_auth
        .lines()
        .find_map(|line| line.strip_prefix("publickey "))
        .and_then(fingerprint_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with `ssh-keygen -t ed25519`; `ssh-keygen -lf` prints the fingerprint below.
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs test@agent-gate";
    const FINGERPRINT: &str = "SHA256:n1ThldcEJ5O0cPbS4NSbo838Eg5eN8wK+D8UDIzKNF4";

    #[test]
    fn fingerprints_match_ssh_keygen() {
        assert_eq!(fingerprint_of(KEY).as_deref(), Some(FINGERPRINT));
        let auth = format!("publickey {}\n", KEY.rsplit_once(' ').unwrap().0);
        assert_eq!(
            authenticated_fingerprint(&auth).as_deref(),
            Some(FINGERPRINT)
        );
        assert_eq!(authenticated_fingerprint("password\n"), None);
    }

    #[test]
    fn malformed_keys_have_no_fingerprint() {
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 AAAA",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIPTbTBnuJH0d5pXUodS1fMqrlzOWDnfoSzWH8s4DhN5j",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPTbTBnuJH0d5pXUodS1fMqrlzOWDnfoSzWH8s4DhN5j===",
            "ssh-ed25519 !AAAC3NzaC1lZDI1NTE5AAAAIPTbTBnuJH0d5pXUodS1fMqrlzOWDnfoSzWH8s4DhN5",
        ] {
            assert_eq!(fingerprint_of(bad), None, "{bad}");
        }
    }
}

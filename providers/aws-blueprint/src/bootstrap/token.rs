//! Bootstrap tokens: `[a-z0-9]{6}.[a-z0-9]{16}`, the id public and the
//! secret half drawn from the operating system's CSPRNG (through aws-lc-rs),
//! as kubeadm and the cluster-bootstrap library make them.
//!
//! A token never prints itself: `Debug` shows the id only, and the whole
//! token comes out of [`BootstrapToken::expose`], whose callers write it to a
//! Secrets Manager secret and nowhere else.

use std::fmt;

/// The characters of a token, as `k8s.io/cluster-bootstrap/token/util` draws them.
const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// Lengths of the id and the secret.
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

/// The group kubeadm's node-bootstrap RBAC and CSR auto-approval bind to.
pub const BOOTSTRAP_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a bootstrap token is [a-z0-9]{{6}}.[a-z0-9]{{16}}; this one is not")]
pub struct TokenFormatError;

impl BootstrapToken {
    /// A new token from the CSPRNG.
    pub fn generate() -> Self {
        Self { id: random_chars(ID_LEN), secret: random_chars(SECRET_LEN) }
    }

    /// A token read back (from its secret). The error never quotes the input.
    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        let (id, secret) = text.split_once('.').ok_or(TokenFormatError)?;
        let ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| ALPHABET.contains(&b));
        if ok(id, ID_LEN) && ok(secret, SECRET_LEN) {
            Ok(Self { id: id.to_string(), secret: secret.to_string() })
        } else {
            Err(TokenFormatError)
        }
    }

    /// The public half: the cluster stores the token as the Secret
    /// `kube-system/bootstrap-token-<id>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `id.secret`, the value that goes into the join secret and nowhere else.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.(sensitive))", self.id)
    }
}

/// `len` characters of [`ALPHABET`], uniformly: bytes at or above the
/// largest multiple of 36 that fits in a byte (252) are drawn again, so no
/// character is likelier than another.
fn random_chars(len: usize) -> String {
    const LIMIT: u8 = 252;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 32];
    while out.len() < len {
        aws_lc_rs::rand::fill(&mut buf).expect("the operating system's random source failed");
        for &b in buf.iter().filter(|&&b| b < LIMIT) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[usize::from(b % 36)] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn matches_format(text: &str) -> bool {
        let Some((id, secret)) = text.split_once('.') else { return false };
        let lower_alnum = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
        id.len() == 6 && secret.len() == 16 && lower_alnum(id) && lower_alnum(secret)
    }

    #[test]
    fn generated_tokens_have_kubeadms_format_and_differ() {
        let tokens: Vec<String> = (0..200).map(|_| BootstrapToken::generate().expose()).collect();
        for token in &tokens {
            assert!(matches_format(token), "{token}");
            assert_eq!(BootstrapToken::parse(token).unwrap().expose(), *token);
        }
        let ids: BTreeSet<&str> = tokens.iter().map(|t| &t[..6]).collect();
        assert_eq!(ids.len(), tokens.len(), "ids repeat: {tokens:?}");
    }

    #[test]
    fn every_character_of_the_alphabet_is_drawn() {
        let drawn: BTreeSet<char> = random_chars(4000).chars().collect();
        assert_eq!(drawn.len(), 36, "{drawn:?}");
    }

    #[test]
    fn parse_refuses_malformed_tokens_without_quoting_them() {
        for bad in [
            "",
            "abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdefg",
            "abcdef.0123456789abcde-",
            "abcdef:0123456789abcdef",
        ] {
            let err = BootstrapToken::parse(bad).unwrap_err().to_string();
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
        assert!(BootstrapToken::parse("abcdef.0123456789abcdef").is_ok());
    }

    #[test]
    fn debug_hides_the_secret_half() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let shown = format!("{token:?}");
        assert_eq!(shown, "BootstrapToken(abcdef.(sensitive))");
        assert_eq!(token.id(), "abcdef");
    }
}

//! CLIP byte-level BPE tokenizer, matching the `tokenizers`-backed `CLIPTokenizer` of transformers 5.
//!
//! Steps, as in the `tokenizer.json` that transformers writes for CLIP (normalizer, pre-tokenizer,
//! BPE model, post-processor):
//! 1. split out the special tokens (BOS, EOS, and the pad token: SD2's `!`) on the raw text;
//! 2. each remaining piece: NFC, collapse whitespace, lowercase;
//! 3. split with the CLIP regex `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`;
//! 4. map UTF-8 bytes to unicode characters, BPE with `</w>` on the last symbol;
//! 5. `[BOS] + tokens[..max_len - 2] + [EOS]`, padded to 77 with the pad token.
//!
//! `\p{L}` and `\p{N}` are the Unicode general categories L* and N*, as in the regex crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::config::read_json;
use super::{Result, SdError};

/// The CLIP context length.
pub const MAX_LENGTH: usize = 77;

/// The merges transformers' slow CLIPTokenizer keeps from `merges.txt` (`49152 - 256 - 2`).
const MAX_MERGES: usize = 49152 - 256 - 2;

/// A CLIP BPE tokenizer.
#[derive(Clone, Debug)]
pub struct ClipTokenizer {
    encoder: HashMap<String, i64>,
    bpe_ranks: HashMap<(String, String), usize>,
    byte_encoder: Vec<char>,
    /// Special tokens split out before BPE, longest first.
    specials: Vec<String>,
    /// Id of `<|startoftext|>`.
    pub bos_id: i64,
    /// Id of `<|endoftext|>`.
    pub eos_id: i64,
    /// Id used for padding (EOS for SD1.x, `!` = 0 for SD2.x).
    pub pad_id: i64,
    /// Id for unknown tokens.
    pub unk_id: i64,
    /// Length of every token sequence (77).
    pub max_length: usize,
}

/// GPT-2's reversible map from bytes to printable unicode characters.
fn bytes_to_unicode() -> Vec<char> {
    let mut bs: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut table = vec![' '; 256];
    for (b, c) in bs.into_iter().zip(cs) {
        table[b as usize] = char::from_u32(c).unwrap_or(' ');
    }
    table
}

/// A token given as a string or as `{"content": …}` in tokenizer JSON files.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenSpec {
    Plain(String),
    Added { content: String },
}

impl TokenSpec {
    fn content(self) -> String {
        match self {
            TokenSpec::Plain(s) | TokenSpec::Added { content: s } => s,
        }
    }
}

#[derive(Deserialize, Default)]
struct SpecialTokens {
    bos_token: Option<TokenSpec>,
    eos_token: Option<TokenSpec>,
    unk_token: Option<TokenSpec>,
    pad_token: Option<TokenSpec>,
    model_max_length: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Merge {
    Joined(String),
    Pair(Vec<String>),
}

#[derive(Deserialize)]
struct TokenizerJson {
    model: TokenizerJsonModel,
    #[serde(default)]
    padding: Option<TokenizerJsonPadding>,
}

#[derive(Deserialize)]
struct TokenizerJsonModel {
    vocab: HashMap<String, i64>,
    merges: Vec<Merge>,
}

#[derive(Deserialize)]
struct TokenizerJsonPadding {
    pad_token: Option<String>,
}

impl ClipTokenizer {
    /// Loads a diffusers `tokenizer/` folder: `vocab.json` + `merges.txt`, or `tokenizer.json`,
    /// with the special tokens from `special_tokens_map.json` / `tokenizer_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let vocab = dir.join("vocab.json");
        let merges = dir.join("merges.txt");
        let (encoder, merge_list, mut pad_hint, source): (
            HashMap<String, i64>,
            Vec<(String, String)>,
            _,
            PathBuf,
        ) = if vocab.is_file() && merges.is_file() {
            let encoder: HashMap<String, i64> = read_json(&vocab)?;
            let text = std::fs::read_to_string(&merges).map_err(|source| SdError::Io {
                path: merges.clone(),
                source,
            })?;
            let mut list = Vec::new();
            for line in text.trim().split('\n').skip(1).take(MAX_MERGES) {
                let mut it = line.split(' ');
                match (it.next(), it.next()) {
                    (Some(a), Some(b)) => list.push((a.to_string(), b.to_string())),
                    _ => {
                        return Err(SdError::Tokenizer {
                            path: merges,
                            message: format!("bad merge line {line:?}"),
                        });
                    }
                }
            }
            (encoder, list, None, vocab)
        } else {
            let path = dir.join("tokenizer.json");
            if !path.is_file() {
                return Err(SdError::Io {
                    path: vocab,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "neither vocab.json + merges.txt nor tokenizer.json found",
                    ),
                });
            }
            let tj: TokenizerJson = read_json(&path)?;
            let mut list = Vec::new();
            for m in tj.model.merges {
                let pair = match m {
                    Merge::Joined(s) => s
                        .split_once(' ')
                        .map(|(a, b)| (a.to_string(), b.to_string())),
                    Merge::Pair(v) if v.len() == 2 => Some((v[0].clone(), v[1].clone())),
                    Merge::Pair(_) => None,
                };
                list.push(pair.ok_or_else(|| SdError::Tokenizer {
                    path: path.clone(),
                    message: "bad entry in model.merges".into(),
                })?);
            }
            (
                tj.model.vocab,
                list,
                tj.padding.and_then(|p| p.pad_token),
                path,
            )
        };
        let mut special = SpecialTokens::default();
        for file in ["tokenizer_config.json", "special_tokens_map.json"] {
            let p = dir.join(file);
            if p.is_file() {
                let s: SpecialTokens = read_json(&p)?;
                special.bos_token = s.bos_token.or(special.bos_token);
                special.eos_token = s.eos_token.or(special.eos_token);
                special.unk_token = s.unk_token.or(special.unk_token);
                special.pad_token = s.pad_token.or(special.pad_token);
                special.model_max_length = s.model_max_length.or(special.model_max_length);
            }
        }
        let bos = special
            .bos_token
            .map(TokenSpec::content)
            .unwrap_or("<|startoftext|>".into());
        let eos = special
            .eos_token
            .map(TokenSpec::content)
            .unwrap_or("<|endoftext|>".into());
        let unk = special
            .unk_token
            .map(TokenSpec::content)
            .unwrap_or(eos.clone());
        if let Some(p) = special.pad_token.map(TokenSpec::content) {
            pad_hint = Some(p);
        }
        let pad = pad_hint.unwrap_or(eos.clone());
        let id = |tok: &str| {
            encoder.get(tok).copied().ok_or_else(|| SdError::Tokenizer {
                path: source.clone(),
                message: format!("special token {tok:?} is not in the vocabulary"),
            })
        };
        let (bos_id, eos_id, pad_id, unk_id) = (id(&bos)?, id(&eos)?, id(&pad)?, id(&unk)?);
        let max_length = special
            .model_max_length
            .filter(|&m| (2.0..=MAX_LENGTH as f64).contains(&m))
            .map_or(MAX_LENGTH, |m| m as usize);
        let mut specials = vec![bos, eos, unk, pad];
        specials.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        specials.dedup();
        let bpe_ranks = merge_list
            .into_iter()
            .enumerate()
            .map(|(i, p)| (p, i))
            .collect();
        Ok(Self {
            encoder,
            bpe_ranks,
            byte_encoder: bytes_to_unicode(),
            specials,
            bos_id,
            eos_id,
            pad_id,
            unk_id,
            max_length,
        })
    }

    /// Token ids of `text` without BOS/EOS, untruncated.
    pub fn tokenize(&self, text: &str) -> Vec<i64> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            // Earliest special token; the longest one at that position.
            let hit = self
                .specials
                .iter()
                .filter_map(|s| rest.find(s.as_str()).map(|i| (i, s)))
                .min_by_key(|(i, s)| (*i, std::cmp::Reverse(s.len())));
            match hit {
                Some((i, s)) => {
                    self.tokenize_plain(&rest[..i], &mut ids);
                    ids.push(self.encoder.get(s.as_str()).copied().unwrap_or(self.unk_id));
                    rest = &rest[i + s.len()..];
                }
                None => {
                    self.tokenize_plain(rest, &mut ids);
                    rest = "";
                }
            }
        }
        ids
    }

    /// `[BOS] + tokens + [EOS]`, truncated and padded to `max_length`.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let mut tokens = self.tokenize(text);
        tokens.truncate(self.max_length - 2);
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos_id);
        ids.extend(tokens);
        ids.push(self.eos_id);
        ids.resize(self.max_length, self.pad_id);
        ids
    }

    /// Encodes a batch into a `(batch, max_length)` int64 tensor on the CPU.
    pub fn encode_batch(&self, texts: &[&str]) -> tch::Tensor {
        let ids: Vec<i64> = texts.iter().flat_map(|t| self.encode(t)).collect();
        tch::Tensor::from_slice(&ids).view([texts.len() as i64, self.max_length as i64])
    }

    fn tokenize_plain(&self, text: &str, ids: &mut Vec<i64>) {
        let cleaned = basic_clean(text);
        for word in clip_split(&cleaned) {
            let mapped: String = word
                .bytes()
                .map(|b| self.byte_encoder[b as usize])
                .collect();
            for piece in self.bpe(&mapped) {
                ids.push(self.encoder.get(&piece).copied().unwrap_or(self.unk_id));
            }
        }
    }

    fn bpe(&self, token: &str) -> Vec<String> {
        let chars: Vec<char> = token.chars().collect();
        let Some((last, init)) = chars.split_last() else {
            return Vec::new();
        };
        let mut word: Vec<String> = init.iter().map(|c| c.to_string()).collect();
        word.push(format!("{last}</w>"));
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|w| {
                    self.bpe_ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|&r| (r, w))
                })
                .min_by_key(|(r, _)| *r);
            let Some((_, pair)) = best else { break };
            let (first, second) = (pair[0].clone(), pair[1].clone());
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    merged.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    merged.push(word[i].clone());
                    i += 1;
                }
            }
            word = merged;
        }
        word
    }
}

/// The normalizer of CLIP's `tokenizer.json`: NFC, collapse whitespace runs, lowercase.
fn basic_clean(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let text: String = text.nfc().collect();
    text.split_whitespace()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The CLIP pre-tokenizer regex, as an ordered-alternation scanner:
/// `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`.
fn clip_split(text: &str) -> Vec<&str> {
    const LITERALS: [&str; 9] = [
        "<|startoftext|>",
        "<|endoftext|>",
        "'s",
        "'t",
        "'re",
        "'ve",
        "'m",
        "'ll",
        "'d",
    ];
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    let is_letter = |c: char| {
        matches!(
            get_general_category(c),
            G::UppercaseLetter
                | G::LowercaseLetter
                | G::TitlecaseLetter
                | G::ModifierLetter
                | G::OtherLetter
        )
    };
    // char::is_numeric is exactly the general categories Nd, Nl and No (\p{N}).
    let is_number = |c: char| c.is_numeric();
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let Some(c) = rest.chars().next() else { break };
        let len = if let Some(lit) = LITERALS.iter().find(|l| rest.starts_with(*l)) {
            lit.len()
        } else if is_letter(c) {
            rest.find(|c: char| !is_letter(c)).unwrap_or(rest.len())
        } else if is_number(c) {
            c.len_utf8()
        } else if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        } else {
            rest.find(|c: char| c.is_whitespace() || is_letter(c) || is_number(c))
                .unwrap_or(rest.len())
        };
        out.push(&rest[..len]);
        i += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_split_follows_regex_alternation() {
        assert_eq!(
            clip_split("it's 42 cats!!  ok"),
            vec!["it", "'s", "4", "2", "cats", "!!", "ok"]
        );
        assert_eq!(clip_split("a,b'x"), vec!["a", ",", "b", "'", "x"]);
        assert_eq!(clip_split("naïve café"), vec!["naïve", "café"]);
    }

    #[test]
    fn basic_clean_lowercases_and_collapses_whitespace() {
        assert_eq!(basic_clean("  A\tDSLR\n Photo"), "a dslr photo");
    }

    #[test]
    fn nfc_composes_before_splitting() {
        // `e` + COMBINING ACUTE ACCENT is `é` after NFC, as the `tokenizers` normalizer does.
        assert_eq!(basic_clean("Cafe\u{301}"), "caf\u{e9}");
        // A mark with no precomposed form stays a separate non-letter piece (\p{Mn} ∉ \p{L}).
        assert_eq!(clip_split("x\u{301}y"), vec!["x", "\u{301}", "y"]);
    }

    #[test]
    fn bytes_to_unicode_is_a_bijection() {
        let t = bytes_to_unicode();
        let mut s: Vec<char> = t.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 256);
        assert_eq!(t[b'!' as usize], '!');
        assert_eq!(t[b' ' as usize], 'Ġ');
    }
}

//! How much of a plugin's own text an audit record keeps: a target call's program, path,
//! arguments and error, a refusal's names. Up to a limit the text is kept as it is; past it, its
//! first bytes and a note with its full length and sha256, so that one call cannot grow the
//! journal by what it sends (a 50 MB argument was once a 50 MB event) and what was run can still
//! be matched against a copy. Texts reach here already redacted; the digest is of the redacted text.

use sha2::{Digest, Sha256};

/// Most bytes of one text kept in a record (an argument, a path, an error).
pub(crate) const TEXT_BYTES: usize = 4 * 1024;
/// Most bytes of all the arguments of one record together; the arguments past it keep their note
/// alone.
pub(crate) const ARGS_BYTES: usize = 64 * 1024;

/// `text` when it is at most `limit` bytes; otherwise its first `limit` bytes (cut at a character
/// boundary) and `…[N bytes in all, sha256 HEX]`.
pub(crate) fn cap(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &text[..end], note(text))
}

fn note(text: &str) -> String {
    format!("…[{} bytes in all, sha256 {}]", text.len(), hex::encode(Sha256::digest(text.as_bytes())))
}

/// The arguments of one call: each capped at [`TEXT_BYTES`], and once what is kept reaches
/// [`ARGS_BYTES`], the rest reduced to their note (an empty argument stays empty).
pub(crate) fn cap_args(args: &[String]) -> Vec<String> {
    let mut kept = 0;
    args.iter()
        .map(|arg| {
            let room = ARGS_BYTES.saturating_sub(kept).min(TEXT_BYTES);
            let capped = if arg.len() <= room {
                arg.clone()
            } else if room == 0 {
                note(arg)
            } else {
                cap(arg, room)
            };
            kept += capped.len();
            capped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_kept_as_they_are() {
        assert_eq!(cap("hello", 5), "hello");
        assert_eq!(cap_args(&["a".into(), String::new()]), ["a", ""]);
    }

    #[test]
    fn a_long_text_keeps_its_start_its_length_and_its_digest() {
        let long = "é".repeat(3000); // 6000 bytes, two per character
        let capped = cap(&long, TEXT_BYTES);
        assert!(capped.starts_with(&"é".repeat(TEXT_BYTES / 2)), "cut at a character boundary");
        let digest = hex::encode(Sha256::digest(long.as_bytes()));
        assert!(capped.ends_with(&format!("…[6000 bytes in all, sha256 {digest}]")), "{capped}");
        assert!(capped.len() < TEXT_BYTES + 100);
    }

    #[test]
    fn the_arguments_of_one_call_keep_at_most_their_share() {
        let args: Vec<String> = (0..100).map(|i| format!("{i}").repeat(10_000)).collect();
        let capped = cap_args(&args);
        assert_eq!(capped.len(), 100, "every argument is still there, if only as its note");
        let total: usize = capped.iter().map(String::len).sum();
        assert!(total < ARGS_BYTES + 100 * 100, "{total}");
        assert!(capped[99].starts_with("…[20000 bytes in all, sha256 "), "{}", capped[99]);
    }
}

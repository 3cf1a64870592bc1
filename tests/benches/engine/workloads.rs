//! The workflows more than one bench runs: W2's fan-out (the engine bench's W2, W4 and W5, and the
//! web view's load check).

/// 1 → `n` parallel `noop` steps → 1, at run limit `limit`.
pub fn fan(n: usize, limit: u32) -> String {
    let items = (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    format!(
        "name = \"fan\"\nversion = \"1.0.0\"\n[limits]\nconcurrency = {limit}\n\n[[steps]]\nid = \"first\"\nplugin = \"noop\"\n\n\
         [[steps]]\nid = \"fan\"\nplugin = \"noop\"\nneeds = [\"first\"]\nfor-each = [{items}]\n\n\
         [[steps]]\nid = \"last\"\nplugin = \"noop\"\nneeds = [\"fan\"]\n"
    )
}

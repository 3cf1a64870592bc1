//! The command transport's three file calls (`lab/PROTOCOL.md`, "Files"): `cat <path>`,
//! `sh -c 'cat > "$1"' sh <path>` (standard input becomes the file) and `rm -f <path>`, on the
//! server's virtual file system (Windows paths, case-insensitive, folders implicit). Nothing else
//! that `cat`, `sh` or `rm` could do is accepted.

use super::{Ctx, Output};

/// The only script `sh -c` runs.
pub const WRITE_SCRIPT: &str = r#"cat > "$1""#;

/// `cat <path>`.
pub fn cat(ctx: &Ctx<'_>, args: &[String]) -> Option<Output> {
    let [path] = args else { return None };
    Some(match ctx.this().file(path) {
        Some(bytes) => Output::ok(bytes),
        None => Output::stderr(1, format!("cat: {path}: No such file or directory\n")),
    })
}

/// `sh -c 'cat > "$1"' sh <path>`.
pub fn write(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let [c, script, zero, path] = args else { return None };
    if c != "-c" || script != WRITE_SCRIPT || zero != "sh" {
        return None;
    }
    let mut contents = Vec::new();
    if let Err(e) = ctx.stdin.read_to_end(&mut contents) {
        return Some(Output::stderr(1, format!("sh: 1: cannot read standard input: {e}\n")));
    }
    let path = path.clone();
    ctx.this_mut().write_file(&path, contents);
    Some(Output::ok(""))
}

/// `rm -f <path>`.
pub fn rm(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let [force, path] = args else { return None };
    if force != "-f" {
        return None;
    }
    let path = path.clone();
    ctx.this_mut().remove_file(&path);
    Some(Output::ok(""))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{exec, exec_with_input};
    use crate::init::fresh_lab;

    #[test]
    fn write_then_read_then_remove() {
        let mut lab = fresh_lab();
        let path = r"C:\Drover\Config\join.xml";
        let out = exec_with_input(
            &mut lab,
            "DRBTS01",
            &["sh", "-c", r#"cat > "$1""#, "sh", path],
            b"<Configuration/>",
        );
        assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (0, String::new(), String::new()));
        let out = exec(&mut lab, "DRBTS01", &["cat", r"c:\drover\config\JOIN.xml"]);
        assert_eq!((out.code, out.stdout_text()), (0, "<Configuration/>".to_owned()));
        assert_eq!(exec(&mut lab, "DRBTS01", &["rm", "-f", path]).code, 0);
        assert_eq!(exec(&mut lab, "DRBTS01", &["rm", "-f", path]).code, 0, "missing is fine");
        let out = exec(&mut lab, "DRBTS01", &["cat", path]);
        assert_eq!(out.code, 1);
        assert_eq!(out.stderr_text(), "cat: C:\\Drover\\Config\\join.xml: No such file or directory\n");
    }

    #[test]
    fn files_belong_to_one_server() {
        let mut lab = fresh_lab();
        assert_eq!(exec(&mut lab, "DRBTS01", &["cat", r"C:\Staging\Contoso.Orders.msi"]).code, 0);
        assert_eq!(exec(&mut lab, "PRDBTS01", &["cat", r"C:\Staging\Contoso.Orders.msi"]).code, 1);
    }

    #[test]
    fn other_shell_commands_are_unsupported() {
        let mut lab = fresh_lab();
        assert_eq!(exec(&mut lab, "DRBTS01", &["sh", "-c", "cat > $1", "sh", "x"]).code, 9009);
        assert_eq!(exec(&mut lab, "DRBTS01", &["rm", "-rf", "x"]).code, 9009);
        assert_eq!(exec(&mut lab, "DRBTS01", &["cat", "a", "b"]).code, 9009);
    }
}

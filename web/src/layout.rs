//! The frame every page of the web view shares: the head (the HTML report's stylesheet and the
//! view's own, both embedded), the bar with who is logged in, and the CSRF token the page's
//! script sends with every action. Nothing is loaded from another origin.

use drover_engine::report::esc;

/// The view's own styles and script, embedded in the binary (no CDN, no network at run time).
pub const VIEW_CSS: &str = include_str!("../assets/view.css");
/// The page script (served as `/assets/view.js`): live updates and the operator actions.
pub const VIEW_JS: &str = include_str!("../assets/view.js");

/// Who looks at a page: enough to draw the bar and the actions.
#[derive(Debug, Clone, Default)]
pub struct PageViewer<'a> {
    /// The logged-in person, if any.
    pub user: Option<&'a str>,
    /// The session's CSRF token, sent back by the page's script with every action.
    pub csrf: Option<&'a str>,
}

/// A whole page: `body` inside the shared frame.
pub fn page(title: &str, viewer: &PageViewer<'_>, body: &str) -> String {
    let who = match viewer.user {
        Some(user) => format!(
            "<span id=\"whoami\">{}</span> <form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Log out</button></form>",
            esc(user),
            esc(viewer.csrf.unwrap_or(""))
        ),
        None => "<a id=\"login-link\" href=\"/login\">Log in</a>".to_string(),
    };
    let csrf =
        viewer.csrf.map(|t| format!("<meta name=\"csrf-token\" content=\"{}\">", esc(t))).unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">{csrf}\
<title>{title} · Drover</title><script src=\"/assets/view.js\" defer></script><style>{report}</style><style>{VIEW_CSS}</style></head><body>\
<nav class=\"bar\"><a href=\"/\">Drover</a><span class=\"who\">{who}</span></nav>\n{body}\n</body></html>\n",
        title = esc(title),
        report = drover_engine::report::STYLE,
    )
}

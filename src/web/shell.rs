//! The app shell: the template environment (built once, templates embedded in the
//! binary), [`render`], the base layout's static assets (stylesheet, script, icon, PWA
//! manifest, service worker) and the offline page. Pages extend `base.html`.

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;

use crate::web::Error;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("signup.html", include_str!("templates/signup.html")),
    ("login.html", include_str!("templates/login.html")),
    ("forgot.html", include_str!("templates/forgot.html")),
    ("reset.html", include_str!("templates/reset.html")),
    ("notice.html", include_str!("templates/notice.html")),
    ("today.html", include_str!("templates/today.html")),
    ("offline.html", include_str!("templates/offline.html")),
    ("contacts.html", include_str!("templates/contacts.html")),
    ("contact.html", include_str!("templates/contact.html")),
    ("appointments.html", include_str!("templates/appointments.html")),
    ("appointment.html", include_str!("templates/appointment.html")),
    ("messages.html", include_str!("templates/messages.html")),
    ("thread.html", include_str!("templates/thread.html")),
    ("settings.html", include_str!("templates/settings.html")),
    ("integrations.html", include_str!("templates/integrations.html")),
    ("admin.html", include_str!("templates/admin.html")),
    ("admin_tenant.html", include_str!("templates/admin_tenant.html")),
    ("calls.html", include_str!("templates/calls.html")),
    ("call.html", include_str!("templates/call.html")),
    ("live.html", include_str!("templates/live.html")),
    ("credits.html", include_str!("templates/credits.html")),
    ("reload.html", include_str!("templates/reload.html")),
];

/// Every page template, parsed once at start (a broken template fails the build of the
/// application, not a request).
///
/// Pages `{% extends "base.html" %}` and fill `title` and `content`. The layout reads:
/// `owner` (an [`crate::web::auth::Owner`]; absent on signed-out pages) for the nav and
/// the sign-out form, `active` (`today`, `live`, `calls`, `contacts`, `appointments`,
/// `messages`, `credits`, `settings`, `admin`) to mark the current tab, and `credit_locked`
/// (added by [`render`]) for the lock banner.
pub fn templates() -> anyhow::Result<Environment<'static>> {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source).map_err(|e| anyhow::anyhow!("template {name}: {e:#}"))?;
    }
    Ok(env)
}

/// Renders template `name` with `context` (e.g. `minijinja::context! { owner, .. }`) as
/// a page: HTML, not cached by browsers or proxies (pages show a tenant's data), framing
/// and foreign scripts refused. `credit_locked` comes with the context: the lock of the
/// signed-in tenant, looked up once per request by [`crate::web::locked`].
pub fn render(templates: &Environment<'_>, name: &str, context: impl serde::Serialize) -> Result<Response, Error> {
    let context = minijinja::Value::from(minijinja::value::Serde(&context));
    let context = minijinja::context! { credit_locked => credit_locked(), ..context };
    let html = templates
        .get_template(name)
        .and_then(|t| t.render(&context))
        .map_err(|e| anyhow::anyhow!("rendering {name}: {e:#}"))?;
    Ok(page(html))
}

tokio::task_local! {
    /// Whether the signed-in tenant of the request being handled is locked.
    static CREDIT_LOCKED: bool;
}

/// Runs a request's handler knowing whether its tenant is locked (set by
/// [`crate::web::locked`], which looks it up once per request), for the layout's banner.
pub async fn with_credit_locked<F: std::future::Future>(locked: bool, handler: F) -> F::Output {
    CREDIT_LOCKED.scope(locked, handler).await
}

/// Whether the signed-in tenant of the request being handled is locked (false outside a
/// request, or without a session).
pub fn credit_locked() -> bool {
    CREDIT_LOCKED.try_with(|locked| *locked).unwrap_or(false)
}

/// The pages' content security policy; `form_targets` are origins other than ours a form
/// may lead to (a form's redirect counts too).
fn content_security_policy(form_targets: &[String]) -> String {
    let mut policy = String::from(
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    for origin in form_targets {
        policy.push(' ');
        policy.push_str(origin);
    }
    policy
}

/// Lets this page's forms lead to `origins` as well (the reload buttons go on to Stripe's
/// hosted Checkout page; without this the browser stops at the redirect).
pub fn allow_form_targets(response: &mut Response, origins: &[String]) {
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(origins)) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

fn page(html: String) -> Response {
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(&[])) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A bare page for answers given where no template environment is at hand.
pub fn plain_page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/static/app.css\"><title>{title}</title></head>\
         <body><main class=\"narrow\"><h1>{title}</h1><p>{message}</p><p><a href=\"/app\">Back to RinglyPro</a></p>\
         </main></body></html>",
        title = escape(title),
        message = escape(message)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn asset(content_type: &'static str, cache: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, cache)], body).into_response()
}

/// `GET /static/app.css`
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", "public, max-age=3600", include_str!("static/app.css"))
}

/// `GET /static/app.js`: registers the service worker, fills the signup time zone.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", "public, max-age=3600", include_str!("static/app.js"))
}

/// `GET /static/live.js`: the live calls page's event-stream client.
pub async fn live_script() -> Response {
    asset("text/javascript; charset=utf-8", "public, max-age=3600", include_str!("static/live.js"))
}

/// `GET /static/reload.js`: the reload page's poll of its status.
pub async fn reload_script() -> Response {
    asset("text/javascript; charset=utf-8", "public, max-age=3600", include_str!("static/reload.js"))
}

/// `GET /static/icon.svg`
pub async fn icon() -> Response {
    asset("image/svg+xml", "public, max-age=86400", include_str!("static/icon.svg"))
}

/// `GET /manifest.webmanifest`
pub async fn manifest() -> Response {
    asset("application/manifest+json", "public, max-age=3600", include_str!("static/manifest.webmanifest"))
}

/// `GET /sw.js`: served from the root so it controls every page; never cached by HTTP so
/// a new version is picked up on the next visit.
pub async fn service_worker() -> Response {
    asset("text/javascript; charset=utf-8", "no-cache", include_str!("static/sw.js"))
}

/// `GET /offline`: what the service worker shows when a page cannot be fetched.
pub async fn offline(axum::extract::State(app): axum::extract::State<crate::web::WebState>) -> Response {
    render(&app.templates, "offline.html", minijinja::context! {}).unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn outside_a_request_nothing_is_locked() {
        assert!(!super::credit_locked());
    }

    #[tokio::test]
    async fn a_request_of_a_locked_tenant_renders_knowing_it() {
        assert!(super::with_credit_locked(true, async { super::credit_locked() }).await);
        assert!(!super::with_credit_locked(false, async { super::credit_locked() }).await);
    }

    use super::*;

    #[test]
    fn every_template_parses_and_the_layout_escapes_what_it_is_given() {
        let env = templates().unwrap();
        let html = env
            .get_template("notice.html")
            .unwrap()
            .render(minijinja::context! { title => "Hi", message => "<script>x</script>" })
            .unwrap();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>x"));
    }

    #[test]
    fn a_plain_page_escapes_its_message() {
        assert!(plain_page("t", "<b>").contains("&lt;b&gt;"));
    }
}

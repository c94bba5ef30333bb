//! The OpenAPI document of `/api`: each area's `OpenApi` struct merged into one, served as
//! `/api/openapi.json`, and `/api/docs`, a self-contained page that lists it.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use crate::web::auth::SESSION_COOKIE;

/// The ways a request proves who sends it: the session cookie (with, on state changes, the
/// session's CSRF token in a header), or an API key as a bearer token.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "the session cookie set by signing up or in",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "the session's CSRF token (`csrf_token` from sign-in or /api/auth/me); required on every POST, PATCH and DELETE made with the session cookie",
            ))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rpk_...")
                    .description(Some(
                        "an API key made in Settings → Integrations, as `Authorization: Bearer <key>`; it acts for its \
                         business on every /api route a session can use, needs no CSRF token, and is limited to \
                         API_REQUESTS_PER_KEY_PER_MINUTE requests a minute (429 with Retry-After past it); making \
                         and revoking keys needs a session",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "RinglyPro API",
        description = "Everything the RinglyPro dashboard does, as JSON. Errors are `{\"error\": ..., \"field\": ...}`."
    ),
    components(schemas(crate::web::error::ErrorBody, crate::web::error::FieldErrorBody)),
    modifiers(&SecuritySchemes)
)]
struct Base;

/// The whole document: the base with every area merged in.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi();
    doc.merge(crate::web::accounts::AuthApi::openapi());
    doc.merge(crate::web::settings::SettingsApi::openapi());
    doc.merge(crate::web::admin::AdminApi::openapi());
    doc.merge(crate::web::crm::CrmApi::openapi());
    doc.merge(crate::web::calls::CallsApi::openapi());
    doc.merge(crate::web::live::LiveApi::openapi());
    doc.merge(crate::web::credits::CreditsApi::openapi());
    doc.merge(crate::web::blocked::BlockedApi::openapi());
    doc.merge(crate::web::api_keys::ApiKeysApi::openapi());
    doc.merge(crate::web::integrations::WebhooksApi::openapi());
    accept_api_keys(&mut doc);
    doc
}

/// Every operation a session can use also takes an API key, except the administrators'
/// and the account's own (signing in and out), and making or revoking keys.
fn accept_api_keys(doc: &mut utoipa::openapi::OpenApi) {
    let names = |r: &SecurityRequirement| serde_json::to_value(r).ok().and_then(|v| v.as_object().cloned());
    for (path, item) in doc.paths.paths.iter_mut() {
        if path.starts_with("/api/admin") || path.starts_with("/api/auth") {
            continue;
        }
        let operations = [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ];
        for (method, operation) in operations {
            if path.starts_with("/api/api-keys") && method != "get" {
                continue;
            }
            let Some(security) = operation.as_mut().and_then(|o| o.security.as_mut()) else { continue };
            let by_session = security.iter().filter_map(names).any(|n| n.contains_key("session"));
            let by_key = security.iter().filter_map(names).any(|n| n.contains_key("api_key"));
            if by_session && !by_key {
                security.push(SecurityRequirement::new("api_key", Vec::<String>::new()));
            }
        }
    }
}

/// `GET /api/openapi.json`
pub async fn json() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

/// `GET /api/docs`: the document rendered in the browser by a small script from this
/// server (no outside assets).
pub async fn docs() -> Response {
    let mut response = Html(DOCS_PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// `GET /static/api-docs.js`: lists the document's paths, methods, parameters and schemas.
pub async fn docs_script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], DOCS_SCRIPT).into_response()
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>RinglyPro API</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/api-docs.js" defer></script>
</head>
<body>
<main class="narrow api-docs">
<h1>RinglyPro API</h1>
<p>The machine-readable document is at <a href="/api/openapi.json">/api/openapi.json</a>.
Sign in first; requests that change something send the session's CSRF token as <code>X-CSRF-Token</code>.</p>
<div id="api-docs"><noscript>This page lists the document with a small script; without it, read <a href="/api/openapi.json">the JSON</a>.</noscript></div>
</main>
</body>
</html>
"#;

const DOCS_SCRIPT: &str = r#""use strict";
(function () {
  var root = document.getElementById("api-docs");
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function refName(schema) {
    if (!schema) return "";
    if (schema.$ref) return schema.$ref.split("/").pop();
    if (schema.type === "array") return refName(schema.items) + "[]";
    if (schema.oneOf) return schema.oneOf.map(refName).join(" | ");
    return schema.type || "";
  }
  function schemaBlock(name, schema) {
    var d = el("details", null, "schema");
    d.id = "schema-" + name;
    d.appendChild(el("summary", name));
    var ul = el("ul");
    var props = schema.properties || {};
    var required = schema.required || [];
    Object.keys(props).forEach(function (p) {
      var li = el("li");
      li.appendChild(el("code", p));
      li.appendChild(document.createTextNode(" " + refName(props[p]) + (required.indexOf(p) >= 0 ? " (required)" : "")));
      if (props[p].description) li.appendChild(el("span", " — " + props[p].description, "muted"));
      ul.appendChild(li);
    });
    d.appendChild(ul);
    return d;
  }
  fetch("/api/openapi.json").then(function (r) { return r.json(); }).then(function (doc) {
    root.textContent = "";
    Object.keys(doc.paths).sort().forEach(function (path) {
      var ops = doc.paths[path];
      Object.keys(ops).forEach(function (method) {
        var op = ops[method];
        if (!op || typeof op !== "object" || !op.responses) return;
        var card = el("section", null, "card endpoint");
        var h = el("h2");
        h.appendChild(el("span", method.toUpperCase(), "pill method"));
        h.appendChild(document.createTextNode(" " + path));
        card.appendChild(h);
        if (op.summary) card.appendChild(el("p", op.summary));
        if (op.description) card.appendChild(el("p", op.description, "muted"));
        (op.parameters || []).forEach(function (p) {
          card.appendChild(el("p", "parameter " + p.name + " (" + p.in + (p.required ? ", required" : "") + ") " + refName(p.schema), "muted"));
        });
        var body = op.requestBody && op.requestBody.content;
        if (body) {
          Object.keys(body).forEach(function (ct) {
            card.appendChild(el("p", "body (" + ct + "): " + refName(body[ct].schema), "muted"));
          });
        }
        var ul = el("ul");
        Object.keys(op.responses).forEach(function (status) {
          var resp = op.responses[status];
          var schema = resp.content && resp.content["application/json"] && resp.content["application/json"].schema;
          ul.appendChild(el("li", status + " " + (resp.description || "") + (schema ? " → " + refName(schema) : "")));
        });
        card.appendChild(ul);
        if (op.security) {
          card.appendChild(el("p", "needs: " + op.security.map(function (s) { return Object.keys(s).join(" + "); }).join(" or "), "muted"));
        }
        root.appendChild(card);
      });
    });
    var schemas = (doc.components && doc.components.schemas) || {};
    root.appendChild(el("h2", "Schemas"));
    Object.keys(schemas).sort().forEach(function (name) { root.appendChild(schemaBlock(name, schemas[name])); });
  }).catch(function () {
    root.textContent = "The document could not be loaded; open /api/openapi.json directly.";
  });
})();
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn a_ledger_entry_documents_the_stored_line_and_what_is_read_off_it() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let entry = doc["components"]["schemas"]["LedgerEntry"].to_string();
        for field in ["cost_cents", "reason", "LedgerLine"] {
            assert!(entry.contains(field), "{field} missing from {entry}");
        }
        let line = doc["components"]["schemas"]["LedgerLine"]["properties"].as_object().unwrap();
        for field in ["kind", "amount_cents", "balance_after_cents", "call_sid", "not_charged", "minutes"] {
            assert!(line.contains_key(field), "{field}");
        }
        assert!(!line.contains_key("note"), "the note is given as the entry's reason");
    }
}

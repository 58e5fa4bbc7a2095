//! The page shell: head, navigation, access badge, live-refresh control and flash message.

use maud::{html, Markup, DOCTYPE};

use crate::guard::Ctx;

/// The tab's icon: a ring in the accent colour.
const ICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='5.5' fill='none' stroke='%234f46e5' stroke-width='3'/%3E%3C/svg%3E";

/// A whole page titled `title`, with `current` the navigation entry to highlight (`"jobs"`),
/// refreshing its `data-live` parts every `refresh_secs` (0: never).
pub(crate) fn page(
    ctx: &Ctx,
    title: &str,
    current: &str,
    refresh_secs: u64,
    body: Markup,
) -> Markup {
    let nav = [
        ("overview", "/", "Overview"),
        ("queues", "/queues", "Queues"),
        ("jobs", "/jobs", "Jobs"),
        ("workflows", "/workflows", "Workflows"),
        ("crons", "/crons", "Crons"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                meta name="csrf-token" content=(ctx.csrf);
                title { (title) " · Oban" }
                // Inline, so the browser asks the application for no /favicon.ico (a 404 in
                // its console when the dashboard is mounted under a path).
                link rel="icon" href=(ICON);
                link rel="stylesheet" href=(ctx.url(&format!("/assets/app.css?v={:x}", crate::assets::VERSION)));
                script defer src=(ctx.url(&format!("/assets/app.js?v={:x}", crate::assets::VERSION))) {}
            }
            body data-refresh=(refresh_secs) {
                header.top {
                    a.brand href=(ctx.url("/")) { "Oban" }
                    nav {
                        @for (key, path, label) in nav {
                            a href=(ctx.url(path)) aria-current=[(key == current).then_some("page")] { (label) }
                        }
                    }
                    div.spacer {}
                    @if refresh_secs > 0 {
                        button #live-toggle type="button" aria-pressed="false" { "Pause refresh" }
                    }
                    span.access class=(format!("access-{}", ctx.access.label().replace(' ', "-"))) { (ctx.access.label()) }
                    @if ctx.sign_in {
                        @if ctx.access.can_act() {
                            form.inline method="post" action=(ctx.url("/logout")) {
                                (csrf_field(ctx))
                                button.link type="submit" { "Sign out" }
                            }
                        } @else {
                            a href=(ctx.url("/login")) { "Sign in" }
                        }
                    }
                }
                main {
                    @if let Some(flash) = &ctx.flash {
                        p.flash role="status" { (flash) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The hidden field every action form carries.
pub(crate) fn csrf_field(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name=(crate::csrf::FIELD) value=(ctx.csrf); }
}

/// The hidden field that brings an action back to the page it was made from.
pub(crate) fn back_field(back: &str) -> Markup {
    html! { input type="hidden" name="back" value=(back); }
}

/// A state as a coloured badge.
pub(crate) fn state_badge(state: oban_core::JobState) -> Markup {
    let name = state.to_string();
    html! { span class=(format!("badge state-{name}")) { (name) } }
}

/// JSON pretty-printed in a `<pre>` (escaped like any other value).
pub(crate) fn json_block(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    html! { pre.json { (text) } }
}

/// An empty table's message.
pub(crate) fn empty(message: &str) -> Markup {
    html! { p.empty { (message) } }
}

//! Space-time diagrams of a replayed run, as one self-contained HTML file.
//!
//! One vertical lane per validator, time flowing down; every message is an
//! arrow from its sender's lane at the send time to its receiver's lane at
//! the delivery time (lost and cut messages end in a red cross); marks on
//! the lanes show views entered, timeouts, certificates formed, blocks
//! finalized, evidence, and injected faults; violations are red lines across
//! every lane. Hovering any element shows what it is. The file has no
//! external resources, so it opens anywhere, and it draws with plain SVG.

use crate::recorder::MarkKind;
use crate::runner::{Diagram, Outcome, replay_command};
use ballast_core::ValidatorIndex;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

/// Pixels between lanes.
const LANE_PX: f64 = 150.0;
/// Room left of the first lane for the time axis.
const AXIS_PX: f64 = 70.0;
/// Room above the first event for lane names.
const HEADER_PX: f64 = 40.0;
/// Tallest drawing: longer windows get fewer pixels per ms.
const MAX_HEIGHT_PX: f64 = 6_000.0;
/// Most message arrows drawn; beyond this the window should be narrowed.
const MAX_ARROWS: usize = 20_000;

/// The default window: the 400 ms before the first violation and 100 ms
/// after it (a few views at the default timers), else the first 500 ms.
pub fn default_window_ms(outcome: &Outcome, duration_ms: u64) -> (u64, u64) {
    match outcome.first_violation_ms {
        Some(at) => (at.saturating_sub(400), (at + 100).min(duration_ms)),
        None => (0, duration_ms.min(500)),
    }
}

/// Violations listed above the drawing; the rest are counted.
const MAX_LISTED_VIOLATIONS: usize = 5;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Colour of a message arrow, by what it carries.
fn colour(label: &str) -> &'static str {
    if label.starts_with("PROPOSE") {
        "#1f5fbf"
    } else if label.contains("vote notarize") {
        "#2e9e44"
    } else if label.contains("vote nullify") {
        "#e07b00"
    } else if label.contains("vote finalize") {
        "#8a3ab9"
    } else if label.contains("certificate") {
        "#222222"
    } else {
        "#8c8c8c"
    }
}

/// A message copy: send time, receive time (if delivered), endpoints, label.
struct Arrow {
    from: ValidatorIndex,
    to: ValidatorIndex,
    sent_us: u64,
    delivered_us: Option<u64>,
    label: String,
    dropped: Option<&'static str>,
}

/// Pairs every delivery with the earliest matching send (same link, same
/// bytes); sends with no delivery become dropped arrows.
fn arrows(diagram: &Diagram) -> Vec<Arrow> {
    let mut pending: BTreeMap<(ValidatorIndex, ValidatorIndex, u64), VecDeque<usize>> =
        BTreeMap::new();
    let mut out: Vec<Arrow> = Vec::new();
    for send in &diagram.sends {
        if send.delays_us.is_empty() {
            out.push(Arrow {
                from: send.from,
                to: send.to,
                sent_us: send.sent_us,
                delivered_us: None,
                label: String::new(),
                dropped: Some(send.dropped.unwrap_or("lost")),
            });
            continue;
        }
        for _ in &send.delays_us {
            pending
                .entry((send.from, send.to, send.bytes_hash))
                .or_default()
                .push_back(out.len());
            out.push(Arrow {
                from: send.from,
                to: send.to,
                sent_us: send.sent_us,
                delivered_us: None,
                label: String::new(),
                // Until a delivery claims it: dropped on arrival (a
                // partition, a crashed receiver, or a full inbox).
                dropped: Some("not delivered"),
            });
        }
    }
    for d in &diagram.log.deliveries {
        if let Some(i) = pending
            .get_mut(&(d.from, d.to, d.bytes_hash))
            .and_then(VecDeque::pop_front)
        {
            out[i].delivered_us = Some(d.at_us);
            out[i].label = d.label.clone();
            out[i].dropped = None;
        }
    }
    out
}

/// Renders the diagram of `outcome` between `from_ms` and `to_ms`.
pub fn render_html(
    outcome: &Outcome,
    diagram: &Diagram,
    validators: usize,
    (from_ms, to_ms): (u64, u64),
) -> String {
    assert!(to_ms > from_ms, "empty window");
    let (from_us, to_us) = (from_ms * 1000, to_ms * 1000);
    let px_per_ms = (MAX_HEIGHT_PX / (to_ms - from_ms) as f64).clamp(0.2, 20.0);
    let y = |us: u64| HEADER_PX + (us.saturating_sub(from_us)) as f64 / 1000.0 * px_per_ms;
    let x = |v: ValidatorIndex| AXIS_PX + LANE_PX * (f64::from(v) + 0.5);
    let width = AXIS_PX + LANE_PX * validators as f64 + 20.0;
    let height = y(to_us) + 20.0;
    let inside = |us: u64| (from_us..=to_us).contains(&us);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" id="diagram" width="{width:.0}" height="{height:.0}" font-family="monospace" font-size="11">
<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="context-stroke"/></marker></defs>"##
    );
    // Time axis: a tick every step that gives about 80 px between labels.
    let step_ms = [1u64, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000]
        .into_iter()
        .find(|s| *s as f64 * px_per_ms >= 80.0)
        .unwrap_or(10_000);
    let mut tick = from_ms.div_ceil(step_ms) * step_ms;
    while tick <= to_ms {
        let ty = y(tick * 1000);
        let _ = writeln!(
            svg,
            r##"<line x1="{AXIS_PX}" x2="{width:.0}" y1="{ty:.1}" y2="{ty:.1}" stroke="#eee"/><text x="4" y="{:.1}">{tick} ms</text>"##,
            ty + 4.0
        );
        tick += step_ms;
    }
    // Lanes.
    for v in 0..validators as ValidatorIndex {
        let lx = x(v);
        let _ = writeln!(
            svg,
            r##"<line class="lane" x1="{lx:.1}" x2="{lx:.1}" y1="{HEADER_PX}" y2="{:.1}" stroke="#999"/><text x="{lx:.1}" y="20" text-anchor="middle" font-weight="bold">v{v}</text>"##,
            y(to_us)
        );
    }
    // Down periods (crash to restart, pause to resume) as shaded bands.
    let mut down_since: BTreeMap<ValidatorIndex, u64> = BTreeMap::new();
    for (at_us, validator, kind, text) in &diagram.log.marks {
        let (Some(v), MarkKind::Fault) = (validator, kind) else {
            continue;
        };
        if text.starts_with("crash") || text.starts_with("pause") {
            down_since.insert(*v, *at_us);
        } else if let Some(start) = down_since.remove(v) {
            band(
                &mut svg,
                x(*v),
                y(start.max(from_us)),
                y((*at_us).min(to_us)),
                text,
            );
        }
    }
    for (v, start) in down_since {
        band(
            &mut svg,
            x(v),
            y(start.max(from_us)),
            y(to_us),
            "down until the end",
        );
    }
    // Messages.
    let mut drawn = 0;
    for a in arrows(diagram) {
        if !inside(a.sent_us) || drawn >= MAX_ARROWS {
            continue;
        }
        drawn += 1;
        let (x1, y1) = (x(a.from), y(a.sent_us));
        match (a.delivered_us, a.dropped) {
            (Some(at), _) => {
                let (x2, y2) = (x(a.to), y(at.min(to_us)));
                let _ = writeln!(
                    svg,
                    r##"<line class="msg" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{}" stroke-width="1" marker-end="url(#head)"><title>v{} → v{}: {} (sent {:.3} ms, delivered {:.3} ms)</title></line>"##,
                    colour(&a.label),
                    a.from,
                    a.to,
                    escape(&a.label),
                    a.sent_us as f64 / 1000.0,
                    at as f64 / 1000.0
                );
            }
            (None, why) => {
                let x2 = x1 + (x(a.to) - x1) * 0.25;
                let y2 = y1 + 6.0;
                let _ = writeln!(
                    svg,
                    r##"<g class="dropped"><line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="#d00" stroke-dasharray="2,2"/><text x="{x2:.1}" y="{:.1}" fill="#d00" text-anchor="middle">×</text><title>v{} → v{}: {} at {:.3} ms</title></g>"##,
                    y2 + 4.0,
                    a.from,
                    a.to,
                    why.unwrap_or("lost"),
                    a.sent_us as f64 / 1000.0
                );
            }
        }
    }
    // Marks.
    for (at_us, validator, kind, text) in &diagram.log.marks {
        if !inside(*at_us) {
            continue;
        }
        let my = y(*at_us);
        let title = format!(
            "<title>{:.3} ms: {}</title>",
            *at_us as f64 / 1000.0,
            escape(text)
        );
        let Some(v) = validator else {
            // Whole-network events: partitions, violations.
            let stroke = if *kind == MarkKind::Violation {
                "#d00"
            } else {
                "#c60"
            };
            let _ = writeln!(
                svg,
                r##"<g class="mark {kind:?}"><line x1="{AXIS_PX}" x2="{width:.0}" y1="{my:.1}" y2="{my:.1}" stroke="{stroke}" stroke-width="2" stroke-dasharray="6,3"/><text x="{:.0}" y="{:.1}" fill="{stroke}" font-weight="bold">{}</text>{title}</g>"##,
                AXIS_PX + 4.0,
                my - 3.0,
                escape(&truncated(text, 120))
            );
            continue;
        };
        let mx = x(*v);
        let shape = match kind {
            MarkKind::View => format!(
                r##"<line x1="{:.1}" x2="{:.1}" y1="{my:.1}" y2="{my:.1}" stroke="#000" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"##,
                mx - 8.0,
                mx + 8.0,
                mx + 10.0,
                my + 4.0,
                escape(text)
            ),
            MarkKind::Timeout => format!(
                r##"<circle cx="{mx:.1}" cy="{my:.1}" r="4" fill="#e07b00"/><text x="{:.1}" y="{:.1}" fill="#e07b00">{}</text>"##,
                mx - 10.0,
                my + 4.0,
                escape(text)
            ),
            MarkKind::Certificate => format!(
                r##"<rect x="{:.1}" y="{:.1}" width="7" height="7" transform="rotate(45 {mx:.1} {my:.1})" fill="#1f5fbf"/>"##,
                mx - 3.5,
                my - 3.5
            ),
            MarkKind::Finalized => format!(
                r##"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="#2e9e44"/><text x="{:.1}" y="{:.1}" fill="#2e9e44">{}</text>"##,
                mx - 4.0,
                my - 4.0,
                mx + 10.0,
                my + 4.0,
                escape(text)
            ),
            MarkKind::Fault => format!(
                r##"<text x="{mx:.1}" y="{my:.1}" fill="#d00" text-anchor="middle" font-weight="bold">⚡ {}</text>"##,
                escape(text)
            ),
            MarkKind::Evidence => format!(
                r##"<path d="M {mx:.1} {:.1} l 5 9 l -10 0 z" fill="#d00"/>"##,
                my - 5.0
            ),
            MarkKind::Violation => format!(
                r##"<circle cx="{mx:.1}" cy="{my:.1}" r="6" fill="none" stroke="#d00" stroke-width="2"/>"##
            ),
        };
        let _ = writeln!(svg, r##"<g class="mark {kind:?}">{shape}{title}</g>"##);
    }
    svg.push_str("</svg>\n");

    let mut html = String::new();
    let _ = writeln!(
        html,
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Ballast run: {name} seed {seed}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
.violation {{ color: #d00; font-weight: bold; }}
.legend span {{ margin-right: 1.2em; }}
code {{ background: #f4f4f4; padding: 0 0.3em; }}
</style></head><body>
<h1>Scenario <code>{name}</code>, seed {seed}</h1>
<p>Replay: <code>{replay}</code><br>
Window: {from_ms} – {to_ms} ms of simulated time ({px_per_ms:.2} px per ms). Finalized heights per validator: {heights:?}; highest view {view}; {drawn} messages drawn.</p>"##,
        name = escape(&outcome.scenario),
        seed = outcome.seed,
        replay = escape(&replay_command(&outcome.scenario, outcome.seed)),
        heights = outcome.finalized_heights,
        view = outcome.max_view,
    );
    if outcome.violations.is_empty() {
        html.push_str("<p>Invariants: all held.</p>\n");
    }
    for v in outcome.violations.iter().take(MAX_LISTED_VIOLATIONS) {
        let _ = writeln!(html, r#"<p class="violation">VIOLATION: {}</p>"#, escape(v));
    }
    if outcome.violations.len() > MAX_LISTED_VIOLATIONS {
        let _ = writeln!(
            html,
            r#"<p class="violation">… and {} more (see the timeline)</p>"#,
            outcome.violations.len() - MAX_LISTED_VIOLATIONS
        );
    }
    html.push_str(
        r##"<p class="legend"><span style="color:#1f5fbf">→ proposal</span><span style="color:#2e9e44">→ notarize vote</span><span style="color:#e07b00">→ nullify vote</span><span style="color:#8a3ab9">→ finalize vote</span><span>→ certificate</span><span style="color:#8c8c8c">→ block sync</span><span style="color:#d00">× lost or cut</span> &nbsp; marks: ▬ view entered, <span style="color:#e07b00">●</span> timeout, <span style="color:#1f5fbf">◆</span> certificate formed, <span style="color:#2e9e44">■</span> finalized, <span style="color:#d00">▲</span> evidence, <span style="color:#d00">⚡</span> fault, shaded: down. Hover for details.</p>
"##,
    );
    html.push_str(&svg);
    // Lets a headless browser confirm the drawing was laid out.
    html.push_str(
        r#"<script>
const box = document.getElementById("diagram").getBBox();
document.body.dataset.rendered = String(box.width > 0 && box.height > 0);
document.body.dataset.arrows = String(document.querySelectorAll("line.msg").length);
</script>
</body></html>
"#,
    );
    html
}

fn band(svg: &mut String, lx: f64, y1: f64, y2: f64, text: &str) {
    if y2 > y1 {
        let _ = writeln!(
            svg,
            r##"<rect class="down" x="{:.1}" y="{y1:.1}" width="20" height="{:.1}" fill="#d00" fill-opacity="0.15"><title>down; ended by: {}</title></rect>"##,
            lx - 10.0,
            y2 - y1,
            escape(text)
        );
    }
}

fn truncated(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max).collect::<String>() + "…"
    }
}

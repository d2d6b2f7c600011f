//! The throughput/latency curve of a `ballast bench` sweep as a standalone
//! SVG: finalized tx/s across, p50 and p99 finalization latency up (log
//! scale: below saturation latencies are tens of milliseconds, past it
//! seconds), with the run's bound and half of it (issue 19's aim) marked.

use crate::bench::BenchReport;
use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 46.0;

/// The curve of `runs` (offered rate, report), in the order given.
pub fn curve_svg(runs: &[(u64, BenchReport)]) -> String {
    let bound = runs
        .iter()
        .map(|(_, r)| r.bound_per_second)
        .fold(0.0, f64::max);
    let most_achieved = runs
        .iter()
        .map(|(_, r)| r.achieved_per_second)
        .fold(0.0, f64::max);
    // The x axis reaches half the bound at least, so the aim is in view.
    let x_max = nice_ceiling(most_achieved.max(bound * 0.5) * 1.05);
    let latencies = runs
        .iter()
        .flat_map(|(_, r)| [r.latency_p50_ms, r.latency_p99_ms]);
    let y_max_ms = nice_ceiling(latencies.fold(100.0, f64::max));
    let y_min_ms = 10.0_f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |tps: f64| LEFT + tps / x_max * plot_w;
    let y = |ms: f64| {
        let ms = ms.max(y_min_ms);
        TOP + plot_h * (1.0 - (ms / y_min_ms).log10() / (y_max_ms / y_min_ms).log10())
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">\n\
<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
<text x=\"{LEFT}\" y=\"18\" font-size=\"13\">Finalization latency against finalized throughput (ballast bench)</text>"
    );
    // Axes and grid.
    let _ = writeln!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>",
        TOP + plot_h,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    );
    let mut tick_ms = y_min_ms;
    while tick_ms <= y_max_ms {
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\n\
<text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{tick_ms:.0}</text>",
            y(tick_ms),
            LEFT + plot_w,
            LEFT - 4.0,
            y(tick_ms) + 4.0
        );
        tick_ms *= 10.0;
    }
    for i in 0..=5 {
        let tps = x_max * i as f64 / 5.0;
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{tps:.0}</text>",
            x(tps),
            TOP + plot_h + 14.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">finalized tx/s</text>\n\
<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">latency ms (log)</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    // The aim (half the bound) and the bound, where they fit.
    for (share, label) in [(0.5, "half the bound"), (1.0, "bound")] {
        let tps = bound * share;
        if tps > 0.0 && tps <= x_max {
            let _ = writeln!(
                svg,
                "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#c33\" stroke-dasharray=\"4 3\"/>\n\
<text x=\"{2:.1}\" y=\"{3:.1}\" fill=\"#c33\">{label} ({tps:.0})</text>",
                x(tps),
                TOP + plot_h,
                x(tps) + 4.0,
                TOP + 12.0
            );
        }
    }
    // One line per percentile, points labelled with the offered rate.
    for (name, colour, pick) in [
        (
            "p50",
            "#4a7ab5",
            (|r: &BenchReport| r.latency_p50_ms) as fn(&BenchReport) -> f64,
        ),
        ("p99", "#d08a1c", |r: &BenchReport| r.latency_p99_ms),
    ] {
        let points: Vec<String> = runs
            .iter()
            .map(|(_, r)| format!("{:.1},{:.1}", x(r.achieved_per_second), y(pick(r))))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            points.join(" ")
        );
        for (offered, r) in runs {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{name}: offered {offered} tx/s, finalized {:.0} tx/s, {:.0} ms</title></circle>",
                x(r.achieved_per_second),
                y(pick(r)),
                r.achieved_per_second,
                pick(r)
            );
        }
    }
    let _ = writeln!(
        svg,
        "<text x=\"{0:.1}\" y=\"{1:.1}\" fill=\"#4a7ab5\">p50</text>\n\
<text x=\"{0:.1}\" y=\"{2:.1}\" fill=\"#d08a1c\">p99</text>\n</svg>",
        LEFT + 8.0,
        TOP + 12.0,
        TOP + 26.0
    );
    svg
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|v| *v >= value)
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(achieved: f64, p50: f64, p99: f64) -> BenchReport {
        BenchReport {
            achieved_per_second: achieved,
            latency_p50_ms: p50,
            latency_p99_ms: p99,
            bound_per_second: 15_000.0,
            ..BenchReport::default()
        }
    }

    #[test]
    fn the_curve_has_a_point_per_run_and_percentile_and_marks_the_aim() {
        let runs = vec![
            (1000, report(990.0, 90.0, 160.0)),
            (4000, report(3700.0, 2300.0, 8800.0)),
        ];
        let svg = curve_svg(&runs);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("half the bound (7500)"));
        assert!(svg.contains("offered 4000 tx/s, finalized 3700 tx/s, 8800 ms"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn axis_ends_are_round() {
        assert_eq!(nice_ceiling(7_700.0), 10_000.0);
        assert_eq!(nice_ceiling(1_500.0), 2_000.0);
        assert_eq!(nice_ceiling(400.0), 500.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }
}

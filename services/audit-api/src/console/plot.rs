//! The signals page: per adverse-event kind, a forest plot drawn on the
//! server (SVG, no script) of each group's rate per 1,000 injections over
//! the rolling window with its 95% interval, the rest of the clinic's rate
//! beside it, and the signalled groups marked; the table under it.

use maud::{Markup, PreEscaped, html};
use prolo_projector::rules::{
    disproportionality::{per_1000, wilson_per_1000 as wilson},
    signals::Dimension,
};
use prolo_query::{GroupRate, KindRate, SignalReport};

/// One row of a kind's plot.
struct Row<'a> {
    group: &'a GroupRate,
    kind: &'a KindRate,
    rate: f64,
    low: f64,
    high: f64,
    rest: f64,
}

fn rows<'a>(report: &'a SignalReport, kind: &str) -> Vec<Row<'a>> {
    report
        .groups
        .iter()
        .filter_map(|group| {
            let k = group.by_kind.iter().find(|k| k.kind == kind)?;
            let t = &k.window_table;
            (t.group_events > 0 || k.signalled).then(|| {
                let (low, high) = wilson(t.group_events, t.group_injections);
                Row {
                    group,
                    kind: k,
                    rate: per_1000(t.group_events, t.group_injections),
                    low,
                    high,
                    rest: per_1000(t.rest_events, t.rest_injections),
                }
            })
        })
        .collect()
}

const WIDTH: f64 = 760.0;
const LABEL: f64 = 300.0;
const ROW: f64 = 26.0;

/// The SVG forest plot of one kind.
fn forest(kind: &str, rows: &[Row<'_>]) -> Markup {
    let top = rows
        .iter()
        .map(|r| r.high.max(r.rest))
        .fold(1.0_f64, f64::max);
    // A round upper end: 1, 2 or 5 times a power of ten.
    let magnitude = 10f64.powf(top.log10().floor());
    let scale_max = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|m| *m >= top)
        .unwrap_or(top);
    let plot_width = WIDTH - LABEL - 20.0;
    let x = |v: f64| LABEL + plot_width * (v / scale_max).clamp(0.0, 1.0);
    let height = ROW * (rows.len() as f64 + 2.0);
    let axis_y = ROW * (rows.len() as f64 + 0.5);
    let mut svg = String::new();
    for (i, r) in rows.iter().enumerate() {
        let y = ROW * (i as f64 + 0.5);
        let signalled = r.kind.signalled;
        let colour = if signalled { "#b00020" } else { "#1f3b73" };
        let label = format!("{} {}", r.group.dimension, r.group.group);
        svg.push_str(&format!(
            "<g class=\"row{}\" data-dimension=\"{}\" data-group=\"{}\" data-kind=\"{}\">\
             <title>{}: {:.1} per 1,000 (95% {:.1}–{:.1}); rest of the clinic {:.1}</title>\
             <text x=\"0\" y=\"{:.1}\" dominant-baseline=\"middle\" fill=\"{colour}\">{}{}</text>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"{}\" fill=\"{colour}\"/>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#6b6b6b\" stroke-width=\"2\"/>\
             </g>",
            if signalled { " signalled" } else { "" },
            escape(r.group.dimension.as_str()),
            escape(&r.group.group),
            escape(kind),
            escape(&label),
            r.rate,
            r.low,
            r.high,
            r.rest,
            y,
            escape(&label),
            if signalled { " ◆ signalled" } else { "" },
            x(r.low),
            x(r.high),
            x(r.rate),
            if signalled { 6 } else { 4 },
            x(r.rest),
            x(r.rest),
            y - 8.0,
            y + 8.0,
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"{LABEL}\" x2=\"{:.1}\" y1=\"{axis_y:.1}\" y2=\"{axis_y:.1}\" stroke=\"#222\"/>",
        LABEL + plot_width
    ));
    for step in 0..=4 {
        let v = scale_max * f64::from(step) / 4.0;
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#222\">{}</text>",
            x(v),
            axis_y + 16.0,
            trim(v)
        ));
    }
    html! {
        figure {
            svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox=(format!("0 0 {WIDTH} {height}"))
                aria-labelledby=(format!("plot-{kind}")) class="forest" {
                title id=(format!("plot-{kind}")) {
                    (kind) " per 1,000 injections over the window, by group, with 95% intervals"
                }
                (PreEscaped(svg))
            }
            figcaption {
                "Rate of " (kind) " per 1,000 injections given in the window (dot, with its 95% Wilson interval); "
                "the grey tick is the rest of the clinic's rate (all time). Red rows are signalled."
            }
        }
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn number(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.2}"),
        Some(_) => "∞".into(),
        None => "–".into(),
    }
}

/// The whole signals page body.
pub fn signals_body(clinic: &str, report: &SignalReport) -> Markup {
    let kinds: Vec<&str> = report
        .baseline
        .iter()
        .flat_map(|b| &b.by_kind)
        .filter(|k| k.events > 0)
        .map(|k| k.kind.as_str())
        .collect();
    let active: Vec<_> = report.signals.iter().filter(|s| s.active).collect();
    html! {
        p {
            "Window: " (report.window.days) " days"
            @if let (Some(from), Some(to)) = (report.window.from, report.window.to) { ", " (from) " to " (to) }
            ". A group is signalled when its rate over the window stands out against the rest of the clinic: "
            "PRR ≥ " (report.criteria.prr_min) ", χ² ≥ " (report.criteria.chi_square_min)
            ", at least " (report.criteria.events_min) " events, IC025 > " (report.criteria.ic025_above) "."
        }
        h2 { "Active signals" }
        @if active.is_empty() { p.none { "None." } }
        ul.signals {
            @for s in &active {
                li.signalled { strong { (s.kind) } " in " (s.dimension) " " (s.group) ": when raised, "
                    (s.table.group_events) " after " (s.table.group_injections) " injections against "
                    (s.table.rest_events) " after the rest's " (s.table.rest_injections)
                    @if s.dimension == Dimension::Lot { " · " a href=(format!("/console/{clinic}/lots/{}", s.group)) { "trace the lot" } }
                }
            }
        }
        @for kind in &kinds {
            ({
                let rows = rows(report, kind);
                html! {
                    section {
                        h2 { (kind) }
                        @if rows.is_empty() { p.none { "No events of this kind in the window." } }
                        @else {
                            (forest(kind, &rows))
                            table {
                                caption { (kind) " by group over the window" }
                                thead { tr {
                                    th scope="col" { "Group" } th scope="col" { "Events / injections" } th scope="col" { "Per 1,000 (95%)" }
                                    th scope="col" { "Rest per 1,000" } th scope="col" { "PRR (95%)" } th scope="col" { "χ²" } th scope="col" { "IC025" } th scope="col" { "Signalled" }
                                } }
                                tbody {
                                    @for r in &rows {
                                        ({
                                            let t = &r.kind.window_table;
                                            let m = &r.kind.window_measures;
                                            html! {
                                                tr class=(if r.kind.signalled { "signalled" } else { "" }) {
                                                    td { (r.group.dimension) " " (r.group.group) }
                                                    td { (t.group_events) " / " (t.group_injections) }
                                                    td { (format!("{:.1} ({:.1}–{:.1})", r.rate, r.low, r.high)) }
                                                    td { (format!("{:.1}", r.rest)) }
                                                    td { (number(m.prr)) " (" (number(m.prr_low)) "–" (number(m.prr_high)) ")" }
                                                    td { (format!("{:.2}", m.chi_square)) }
                                                    td { (format!("{:.2}", m.ic025)) }
                                                    td { @if r.kind.signalled { "yes" } @else { "no" } }
                                                }
                                            }
                                        })
                                    }
                                }
                            }
                        }
                    }
                }
            })
        }
    }
}

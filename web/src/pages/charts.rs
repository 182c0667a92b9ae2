//! Server-side SVG charts for Species and Analytics: bars, a heatmap and a line. No
//! style attributes (the CSP forbids them): sizes are SVG attributes, colours classes
//! and `fill-opacity`. Each shape carries a `<title>` with its number, and the charts
//! scale to the page's width (`viewBox`).

use maud::{Markup, html};

/// Vertical bars of `values`, `labels[i]` under every `label_every`-th bar and in each
/// bar's title.
pub(crate) fn bars(values: &[u64], labels: &[String], label_every: usize) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let width = values.len().max(1) * 10;
    let height = 100.0;
    let every = label_every.max(1);
    html! {
        svg class="chart bars" viewBox=(format!("0 0 {width} 116")) role="img"
            preserveAspectRatio="none" {
            @for (i, value) in values.iter().enumerate() {
                @let h = *value as f64 / max * height;
                @let label = labels.get(i).map(String::as_str).unwrap_or("");
                rect class="bar" x=(i * 10 + 1) y=(format!("{:.1}", height - h)) width="8"
                    height=(format!("{h:.1}")) {
                    title { (label) ": " (value) }
                }
                @if i % every == 0 {
                    text class="axis" x=(i * 10 + 1) y="112" font-size="8" { (label) }
                }
            }
        }
    }
}

/// A heatmap: one row per `(row label, 24 values)`, one column per hour.
pub(crate) fn heatmap(rows: &[(String, [u64; 24])]) -> Markup {
    let max = rows
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let cell_w = 12;
    let cell_h = 8;
    let left = 64;
    let width = left + 24 * cell_w;
    let height = 12 + rows.len() * cell_h;
    html! {
        svg class="chart heatmap" viewBox=(format!("0 0 {width} {height}")) role="img" {
            @for hour in (0..24).step_by(3) {
                text class="axis" x=(left + hour * cell_w) y="8" font-size="7" { (hour) }
            }
            @for (r, (label, values)) in rows.iter().enumerate() {
                @let y = 12 + r * cell_h;
                text class="axis" x="0" y=(y + cell_h - 1) font-size="7" { (label) }
                @for (hour, value) in values.iter().enumerate() {
                    @if *value > 0 {
                        rect class="cell" x=(left + hour * cell_w) y=(y) width=(cell_w - 1)
                            height=(cell_h - 1)
                            fill-opacity=(format!("{:.2}", 0.15 + 0.85 * *value as f64 / max)) {
                            title { (label) " " (hour) ":00: " (value) }
                        }
                    }
                }
            }
        }
    }
}

/// A line through `points` (x labels and values), drawn over their index.
pub(crate) fn line(points: &[(String, u64)]) -> Markup {
    let max = points.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let n = points.len().max(2) - 1;
    let width = 300.0;
    let height = 100.0;
    let xy = |i: usize, v: u64| {
        (
            10.0 + i as f64 / n as f64 * (width - 20.0),
            height - v as f64 / max * (height - 10.0),
        )
    };
    let polyline: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let (x, y) = xy(i, *v);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    html! {
        svg class="chart line" viewBox=(format!("0 0 {width} 116")) role="img" {
            polyline class="curve" fill="none" points=(polyline.join(" ")) {}
            @for (i, (label, value)) in points.iter().enumerate() {
                @let (x, y) = xy(i, *value);
                circle class="point" cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="1.5" {
                    title { (label) ": " (value) }
                }
            }
            @if let (Some((first, _)), Some((last, _))) = (points.first(), points.last()) {
                text class="axis" x="10" y="112" font-size="8" { (first) }
                text class="axis" x=(width - 60.0) y="112" font-size="8" { (last) }
            }
            text class="axis" x="0" y="10" font-size="8" { (max) }
        }
    }
}

//! Hand-written SVG: the HDR-style latency percentile curve (x: percentile on a log scale of
//! 1/(1-p), y: latency on a log scale) next to throughput over time.

use std::fmt::Write as _;
use std::path::Path;

use super::report::Recorder;

const W: f64 = 1000.0;
const H: f64 = 420.0;
const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 300.0;
const TOP: f64 = 60.0;
const LEFT1: f64 = 80.0;
const LEFT2: f64 = 570.0;
/// Percentile axis: 0 (p0) to 5 nines (p99.999).
const NINES_MAX: f64 = 5.0;

/// Escapes text for SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Position on the percentile axis: log10(1 / (1 - p)), capped at 5 nines.
fn nines(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-5);
    (-rest.log10()).clamp(0.0, NINES_MAX)
}

/// Renders the two panels for `rec` as an SVG document.
pub fn render_svg(title: &str, latency_label: &str, rec: &Recorder) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>
<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>
"#,
        W / 2.0,
        escape(title)
    );
    latency_panel(&mut s, latency_label, rec);
    throughput_panel(&mut s, rec);
    s.push_str("</svg>\n");
    s
}

fn frame(s: &mut String, left: f64, title: &str, x_label: &str, y_label: &str) {
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#444"/>
<text x="{}" y="{}" text-anchor="middle" font-size="13">{}</text>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">{}</text>"##,
        left + PANEL_W / 2.0,
        TOP - 10.0,
        escape(title),
        left + PANEL_W / 2.0,
        TOP + PANEL_H + 36.0,
        escape(x_label),
        left - 55.0,
        TOP + PANEL_H / 2.0,
        left - 55.0,
        TOP + PANEL_H / 2.0,
        escape(y_label)
    );
}

fn latency_panel(s: &mut String, label: &str, rec: &Recorder) {
    frame(
        s,
        LEFT1,
        &format!("{label} by percentile"),
        "percentile",
        "latency (µs, log)",
    );
    let curve = rec.percentile_curve();
    let ticks = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
    for (i, t) in ticks.iter().enumerate() {
        let x = LEFT1 + PANEL_W * i as f64 / NINES_MAX;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{t}</text>"##,
            TOP + PANEL_H,
            TOP + PANEL_H + 16.0
        );
    }
    if curve.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no samples</text>"#,
            LEFT1 + PANEL_W / 2.0,
            TOP + PANEL_H / 2.0
        );
        return;
    }
    let lo = curve
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .max(0.1);
    let hi = curve.iter().map(|p| p.1).fold(0.0, f64::max).max(lo * 10.0);
    let (d_lo, d_hi) = (lo.log10().floor(), hi.log10().ceil());
    let span = (d_hi - d_lo).max(1.0);
    let y_of = |v: f64| TOP + PANEL_H - PANEL_H * (v.max(0.1).log10() - d_lo) / span;
    let mut d = d_lo;
    while d <= d_hi + 1e-9 {
        let y = y_of(10f64.powf(d));
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT1}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT1 + PANEL_W,
            LEFT1 - 6.0,
            y + 4.0,
            fmt_us(10f64.powf(d))
        );
        d += 1.0;
    }
    let pts: Vec<String> = curve
        .iter()
        .map(|&(p, v)| {
            format!(
                "{:.1},{:.1}",
                LEFT1 + PANEL_W * nines(p) / NINES_MAX,
                y_of(v)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##,
        pts.join(" ")
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}">p50 {} · p99 {} · p99.9 {} · max {}</text>"#,
        LEFT1 + 6.0,
        TOP + 16.0,
        fmt_us(rec.quantile_us(0.5)),
        fmt_us(rec.quantile_us(0.99)),
        fmt_us(rec.quantile_us(0.999)),
        fmt_us(rec.hist.max() as f64 / 1e3)
    );
}

fn throughput_panel(s: &mut String, rec: &Recorder) {
    frame(s, LEFT2, "throughput over time", "seconds", "messages/s");
    let series = rec.throughput_series();
    let t_max = series.last().map_or(1.0, |p| p.0).max(0.1);
    let y_max = nice_ceiling(series.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0));
    for i in 0..=4 {
        let v = y_max * i as f64 / 4.0;
        let y = TOP + PANEL_H - PANEL_H * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT2}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT2 + PANEL_W,
            LEFT2 - 6.0,
            y + 4.0,
            fmt_count(v)
        );
        let t = t_max * i as f64 / 4.0;
        let x = LEFT2 + PANEL_W * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{t:.1}</text>"#,
            TOP + PANEL_H + 16.0
        );
    }
    if series.is_empty() {
        return;
    }
    let mut pts = vec![format!("{LEFT2:.1},{:.1}", TOP + PANEL_H)];
    pts.extend(series.iter().map(|&(t, v)| {
        format!(
            "{:.1},{:.1}",
            LEFT2 + PANEL_W * t / t_max,
            TOP + PANEL_H - PANEL_H * v / y_max
        )
    }));
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{}"/>"##,
        pts.join(" ")
    );
}

fn fmt_us(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.3} s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.3} ms", v / 1e3)
    } else {
        format!("{v:.1} µs")
    }
}

fn fmt_count(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// 1, 2 or 5 times a power of ten, at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

/// Writes the plot of `rec` to `path`.
pub fn write_svg(
    path: &Path,
    title: &str,
    latency_label: &str,
    rec: &Recorder,
) -> std::io::Result<()> {
    std::fs::write(path, render_svg(title, latency_label, rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Recorder {
        let mut r = Recorder::new();
        let mut x: u64 = 12345;
        for i in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            r.latency(20_000 + (x >> 40) % 50_000 + if i % 1000 == 0 { 2_000_000 } else { 0 });
            r.completed(i * 100_000, 1, 128);
        }
        r
    }

    #[test]
    fn svg_is_well_formed_and_has_both_panels() {
        let svg = render_svg("produce 128 B <async> & \"x\"", "ack latency", &sample());
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        let polylines: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .collect();
        assert_eq!(polylines.len(), 2);
        for p in polylines {
            let pts = p.attribute("points").unwrap();
            for xy in pts.split(' ') {
                let (x, y) = xy.split_once(',').unwrap();
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((0.0..=W).contains(&x) && (0.0..=H).contains(&y), "{xy}");
            }
        }
        assert!(svg.contains("produce 128 B &lt;async&gt; &amp; &quot;x&quot;"));
    }

    #[test]
    fn empty_recorder_still_renders() {
        let svg = render_svg("empty", "e2e", &Recorder::new());
        roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert!(svg.contains("no samples"));
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert_eq!(nines(100.0), 5.0);
        assert_eq!(nice_ceiling(730.0), 1000.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(5.0), 5.0);
        assert_eq!(fmt_us(1500.0), "1.500 ms");
    }
}

//! The benchmark's plots, as SVG beside RESULTS.md (plotters): Mpps
//! against the number of flows, the burst-time CDF, and end-to-end
//! requests per second by director.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

const SIZE: (u32, u32) = (800, 480);

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e:?}")
}

/// Writes the plots under `dir/plots` and returns the Markdown that shows
/// them (paths relative to `dir`); a plot with no data is left out.
pub fn write(
    dir: &Path,
    sweep: &[(u64, f64, f64)],
    cdf: &[(String, Vec<(f64, f64)>)],
    e2e: &[(&str, String, f64, f64)],
) -> Result<String> {
    let out = dir.join("plots");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut md = String::from("## Plots\n\n");
    if sweep.len() >= 2 {
        flows(&out.join("flows.svg"), sweep)?;
        md += "![Mpps against the number of flows, rvsd and testpmd](plots/flows.svg)\n\n";
    }
    if !cdf.is_empty() {
        burst_cdf(&out.join("burst-cdf.svg"), cdf)?;
        md += "![Burst time CDF per scenario](plots/burst-cdf.svg)\n\n";
    }
    if !e2e.is_empty() {
        requests(&out.join("e2e.svg"), e2e)?;
        md += "![End-to-end requests per second by director](plots/e2e.svg)\n\n";
    }
    Ok(md)
}

/// Mpps (testpmd 5tswap and rvsd forwarded) against flows, log scale.
fn flows(path: &Path, sweep: &[(u64, f64, f64)]) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let xmin = sweep.iter().map(|p| p.0).min().unwrap_or(1) as f64;
    let xmax = sweep.iter().map(|p| p.0).max().unwrap_or(10) as f64;
    let ymax = sweep.iter().map(|p| p.1.max(p.2)).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption("DR, established, 64 B, 1 worker", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((xmin * 0.8..xmax * 1.25).log_scale(), 0.0..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("flows")
        .y_desc("Mpps")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(plot_err)?;
    for (name, color, pick) in [("testpmd 5tswap", BLUE, 1usize), ("rvsd forwarded", RED, 2)] {
        let pts: Vec<(f64, f64)> = sweep
            .iter()
            .map(|p| (p.0 as f64, if pick == 1 { p.1 } else { p.2 }))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

/// Quantile against burst time (µs, log scale), one line per scenario.
fn burst_cdf(path: &Path, cdf: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let all = cdf.iter().flat_map(|c| c.1.iter().map(|p| p.1));
    let xmin = all
        .clone()
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let xmax = all.fold(0.0, f64::max);
    let (xmin, xmax) = if xmin.is_finite() && xmax > xmin {
        (xmin * 0.8, xmax * 1.25)
    } else {
        (0.1, 100.0)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "rvsd: time per non-empty poll-loop pass",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((xmin..xmax).log_scale(), 0.0..1.0)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("µs")
        .y_desc("fraction of passes")
        .draw()
        .map_err(plot_err)?;
    for (i, (name, points)) in cdf.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.1 > 0.0)
            .map(|p| (p.1, p.0))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(plot_err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

/// Requests per second, keep-alive and new connection per request, one
/// pair of bars per setup and director.
fn requests(path: &Path, e2e: &[(&str, String, f64, f64)]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let ymax = e2e.iter().map(|r| r.2.max(r.3)).fold(1.0, f64::max) * 1.15;
    let n = e2e.len();
    let labels: Vec<String> = e2e
        .iter()
        .map(|r| {
            let setup = if r.0.starts_with("one") {
                "1 RS"
            } else {
                "2 RS"
            };
            // The director's first word keeps the axis readable.
            let who = r.1.split([',', ' ']).next().unwrap_or("");
            format!("{setup}: {who}")
        })
        .collect();
    let mut chart = ChartBuilder::on(&root)
        .caption("End to end, requests per second", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, 0.0..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc("requests/s")
        .draw()
        .map_err(plot_err)?;
    for (k, (name, color)) in [("keep-alive", BLUE), ("new connection per request", RED)]
        .into_iter()
        .enumerate()
    {
        chart
            .draw_series(e2e.iter().enumerate().map(|(i, r)| {
                let v = if k == 0 { r.2 } else { r.3 };
                let x0 = i as f64 + 0.1 + 0.4 * k as f64;
                Rectangle::new([(x0, 0.0), (x0 + 0.4, v)], color.filled())
            }))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every plot is drawn from made-up figures, and each file is SVG that
    /// carries the series' labels.
    #[test]
    fn plots_are_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("rvs-plots-{}", std::process::id()));
        let md = write(
            &dir,
            &[
                (1000, 17.0, 10.0),
                (100_000, 16.0, 9.5),
                (1_000_000, 15.0, 8.0),
            ],
            &[(
                "DR (1w)".into(),
                vec![(0.1, 2.0), (0.5, 6.0), (0.99, 15.0), (0.999, 40.0)],
            )],
            &[
                ("one real server", "direct".into(), 30000.0, 15000.0),
                ("one real server", "rvsd, DR".into(), 29000.0, 14000.0),
            ],
        )
        .unwrap();
        for (f, label) in [
            ("flows.svg", "rvsd forwarded"),
            ("burst-cdf.svg", "DR (1w)"),
            ("e2e.svg", "keep-alive"),
        ] {
            let svg = std::fs::read_to_string(dir.join("plots").join(f)).unwrap();
            assert!(svg.starts_with("<svg"), "{f}");
            assert!(svg.contains(label), "{f} lacks {label}");
            assert!(md.contains(&format!("plots/{f}")));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

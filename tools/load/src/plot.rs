//! The sweep's picture: p50 and p99 of the chosen latency against the
//! throughput achieved, one point per step, with the p99 limit and the
//! saturation point marked. SVG, so it needs no fonts.

use std::path::Path;

use plotters::prelude::*;

use crate::sweep::Report;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 600;

fn failed(what: &str) -> impl FnOnce(DrawingAreaErrorKind<std::io::Error>) -> anyhow::Error + '_ {
    move |error| anyhow::anyhow!("plotting {what}: {error}")
}

/// Latency points of the steps that finished something: (achieved/s, ms).
fn points(report: &Report, pick: fn(&crate::sweep::Measure) -> Option<f64>) -> Vec<(f64, f64)> {
    report.steps.iter().filter_map(|step| Some((step.measure.achieved_per_second, pick(&step.measure)?))).collect()
}

pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    let p50 = points(report, |m| m.p50_ms);
    let p99 = points(report, |m| m.p99_ms);
    let limit = report.limits.p99_ms;
    let x_max =
        report.steps.iter().map(|s| s.measure.achieved_per_second.max(s.measure.rate)).fold(1.0, f64::max) * 1.1;
    let y_min = p50.iter().map(|p| p.1).fold(limit, f64::min).max(0.01) / 2.0;
    let y_max = p99.iter().map(|p| p.1).fold(limit, f64::max) * 2.0;

    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(failed("the background"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("checkout-load sweep: {}", report.target), ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())
        .map_err(failed("the axes"))?;
    chart
        .configure_mesh()
        .x_desc("achieved throughput (sagas finished per second in the window)")
        .y_desc(format!("{} latency (ms, log scale)", report.latency.describe()))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(failed("the mesh"))?;

    chart
        .draw_series(LineSeries::new([(0.0, limit), (x_max, limit)], RED.mix(0.4).stroke_width(1)))
        .map_err(failed("the limit"))?
        .label(format!("p99 limit {limit} ms"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.mix(0.4)));
    for (name, series, colour) in [("p50", &p50, BLUE), ("p99", &p99, RED)] {
        chart
            .draw_series(LineSeries::new(series.iter().copied(), colour.stroke_width(2)))
            .map_err(failed(name))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart
            .draw_series(series.iter().map(|&(x, y)| Circle::new((x, y), 4, colour.filled())))
            .map_err(failed(name))?;
    }
    // Each step's offered rate beside its p99, so a step whose throughput
    // collapsed (and so plots to the left) can be told apart.
    let offered = report.steps.iter().filter_map(|step| {
        let m = &step.measure;
        let at = (m.achieved_per_second, m.p99_ms?);
        Some(EmptyElement::at(at) + Text::new(format!("{:.0}/s", m.rate), (7, 2), ("sans-serif", 12)))
    });
    chart.draw_series(offered).map_err(failed("the steps' rates"))?;
    if let Some(saturation) = &report.saturation {
        let x = saturation.achieved_per_second;
        chart
            .draw_series(LineSeries::new([(x, y_min), (x, y_max)], GREEN.mix(0.8).stroke_width(2)))
            .map_err(failed("the saturation point"))?
            .label(format!("saturation: {}/s offered, {x:.1}/s achieved", saturation.rate))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GREEN.mix(0.8).stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(failed("the legend"))?;
    root.present().map_err(failed("the file"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::report::{RunInfo, Tally};
    use crate::sweep::{Breach, Latency, Limits, Measure, Step};

    fn step(rate: f64, achieved: f64, p50: f64, p99: f64, breaches: Vec<Breach>) -> Step {
        let now = Instant::now();
        let info = RunInfo { target: "test".to_owned(), mode: "open loop".to_owned(), seed: 1 };
        let summary = Tally::new((now, now)).unwrap().summary(&info, 0, None);
        let measure = Measure {
            rate,
            offered: 100,
            sent_per_second: rate,
            achieved_per_second: achieved,
            p50_ms: Some(p50),
            p99_ms: Some(p99),
            errors: 0,
            unfinished: 0,
        };
        Step { measure, breaches, summary }
    }

    #[test]
    fn the_plot_is_an_svg_with_its_title_axes_and_saturation_point() {
        let broke = vec![Breach::P99 { p99_ms: 2400.0, limit_ms: 1000.0 }];
        let steps = vec![
            step(10.0, 10.0, 40.0, 80.0, vec![]),
            step(20.0, 19.8, 55.0, 140.0, vec![]),
            step(40.0, 31.0, 900.0, 2400.0, broke),
        ];
        let saturation = Some(steps[1].measure.clone());
        let report = Report {
            target: "restate at http://127.0.0.1:18080".to_owned(),
            latency: Latency::Terminal,
            limits: Limits { p99_ms: 1000.0, max_error_pct: 1.0, min_achieved_share: 0.9 },
            steps,
            saturation,
            stopped: "step 3 broke".to_owned(),
        };
        let path = std::env::temp_dir().join(format!("checkout-load-plot-{}.svg", std::process::id()));
        draw(&report, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for text in [
            "checkout-load sweep: restate at http://127.0.0.1:18080",
            "achieved throughput",
            "log scale",
            "saturation: 20/s offered",
            "p99 limit 1000 ms",
        ] {
            assert!(svg.contains(text), "no {text:?} in the plot");
        }
    }
}

//! Charts and meters drawn as SVG on the server: they read without JavaScript, and the
//! strict CSP (no inline styles) is kept because sizes are attributes. Every chart has
//! its numbers in a table too (screen readers, copy and paste).

use leptos::prelude::*;

/// `used` of `limit` as a labelled bar: amber from 80 %, rose at or over the limit.
#[component]
pub fn QuotaBar(
    #[prop(into)] label: String,
    used: i64,
    limit: i64,
    #[prop(optional, into)] hint: Option<String>,
) -> impl IntoView {
    let pct = if limit <= 0 {
        if used > 0 {
            100
        } else {
            0
        }
    } else {
        (used * 100 / limit).clamp(0, 100)
    };
    let (colour, state) = if limit > 0 && used >= limit {
        ("fill-rose-500", Some("at quota"))
    } else if pct >= 80 {
        ("fill-amber-500", Some("near quota"))
    } else {
        ("fill-emerald-500", None)
    };
    let aria = label.clone();
    view! {
        <div class="space-y-1">
            <div class="flex items-baseline justify-between gap-3 text-sm">
                <span class="font-medium">{label}</span>
                <span class="tabular-nums">
                    {format!("{used} of {limit}")}
                    {state.map(|s| view! { <span class="ml-2 text-xs font-semibold text-amber-700 dark:text-amber-300">{s}</span> })}
                </span>
            </div>
            <svg
                class="h-2 w-full"
                viewBox="0 0 100 2"
                preserveAspectRatio="none"
                role="meter"
                aria-label=aria
                aria-valuemin="0"
                aria-valuemax=limit.to_string()
                aria-valuenow=used.to_string()
            >
                <rect width="100" height="2" rx="1" class="fill-slate-200 dark:fill-slate-700" />
                <rect width=pct.to_string() height="2" rx="1" class=colour />
            </svg>
            {hint.map(|h| view! { <p class="text-xs text-slate-500 dark:text-slate-400">{h}</p> })}
        </div>
    }
}

/// One bar of a chart: its label (a day, say), value and the value as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub shown: String,
}

/// A bar chart with a y axis from 0 to a round maximum, an optional horizontal line
/// (a capacity, say) and every value in a hidden-by-default table.
#[component]
pub fn BarChart(
    #[prop(into)] title: String,
    bars: Vec<Bar>,
    /// A reference line and its label.
    #[prop(optional)]
    line: Option<(f64, String)>,
) -> impl IntoView {
    // About the size the chart is drawn at in a third of the page, so its 9-unit text
    // reads at about 9 px.
    const W: f64 = 340.0;
    const H: f64 = 170.0;
    const LEFT: f64 = 30.0;
    const BOTTOM: f64 = 18.0;
    // Room for the top tick's label.
    const TOP: f64 = 8.0;
    let max_bar = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    // A reference line far above every bar would flatten them: it is drawn only when
    // the bars come within half of it.
    let line = line.filter(|(v, _)| max_bar * 2.0 >= *v);
    let max_value = line.as_ref().map_or(max_bar, |l| max_bar.max(l.0));
    let top = nice_ceiling(max_value);
    let plot_w = W - LEFT;
    let plot_h = H - BOTTOM - TOP;
    let n = bars.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.7).max(1.0);
    let y = move |v: f64| TOP + plot_h - (v / top) * plot_h;
    let label_every = (bars.len() / 10).max(1);
    let ticks: Vec<f64> = (0..=4).map(|i| top * f64::from(i) / 4.0).collect();
    let table_rows = bars.clone();
    let caption = title.clone();
    view! {
        <figure class="space-y-2">
            <figcaption class="text-sm font-medium">{title.clone()}</figcaption>
            <svg viewBox=format!("0 0 {W} {H}") class="h-auto w-full" role="img" aria-label=title>
                {ticks.into_iter().map(|t| view! {
                    <line x1=LEFT.to_string() x2=W.to_string() y1=y(t).to_string() y2=y(t).to_string() class="stroke-slate-200 dark:stroke-slate-700" stroke-width="0.5" />
                    <text x=(LEFT - 4.0).to_string() y=(y(t) + 3.0).to_string() text-anchor="end" class="fill-slate-500 text-[9px]">{format_tick(t)}</text>
                }).collect_view()}
                {bars.iter().enumerate().map(|(i, b)| {
                    let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
                    let h = (b.value / top) * plot_h;
                    view! {
                        <rect x=x.to_string() y=(TOP + plot_h - h).to_string() width=bar_w.to_string() height=h.max(0.0).to_string() rx="1" class="fill-indigo-500 dark:fill-indigo-400">
                            <title>{format!("{}: {}", b.label, b.shown)}</title>
                        </rect>
                        {(i % label_every == 0).then(|| view! {
                            <text x=(x + bar_w / 2.0).to_string() y=(H - 6.0).to_string() text-anchor="middle" class="fill-slate-500 text-[9px]">{b.label.clone()}</text>
                        })}
                    }
                }).collect_view()}
                {line.map(|(v, label)| view! {
                    <line x1=LEFT.to_string() x2=W.to_string() y1=y(v).to_string() y2=y(v).to_string() class="stroke-rose-500" stroke-width="1" stroke-dasharray="4 3" />
                    <text x=(W - 2.0).to_string() y=(y(v) - 3.0).to_string() text-anchor="end" class="fill-rose-600 text-[9px] dark:fill-rose-400">{label}</text>
                })}
            </svg>
            <details class="text-xs text-slate-600 dark:text-slate-400">
                <summary class="cursor-pointer">"Show the numbers"</summary>
                <table class="mt-2 w-full max-w-sm text-left">
                    <caption class="sr-only">{caption}</caption>
                    <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                        {table_rows.into_iter().map(|b| view! {
                            <tr><th scope="row" class="py-0.5 font-normal">{b.label}</th><td class="tabular-nums text-right">{b.shown}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </details>
        </figure>
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v` (1 for nothing to show).
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * base >= v - 1e-9 {
            return m * base;
        }
    }
    10.0 * base
}

fn format_tick(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        // Enough decimals to tell the ticks apart (0.025, 0.05, …).
        let s = format!("{v:.4}");
        s.trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::nice_ceiling;

    #[test]
    fn the_axis_ends_at_a_round_number_at_or_above_the_largest_value() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert!((nice_ceiling(0.05) - 0.05).abs() < 1e-12);
        assert!((nice_ceiling(0.06) - 0.1).abs() < 1e-12);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(11.0), 20.0);
        assert_eq!(nice_ceiling(240.0), 250.0);
        assert_eq!(nice_ceiling(251.0), 500.0);
    }
}

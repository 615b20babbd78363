//! Online time for billing: a device's observed online intervals rolled up per UTC day
//! (DESIGN.md §7, docs/billing-export.md quotes these rules).
//!
//! - Times are UTC; a day is `[00:00, next 00:00)`. An interval crossing midnight is
//!   split there; a month end is just a midnight.
//! - Overlapping or touching reports of one device are merged first: a device is never
//!   counted twice for the same instant.
//! - A device's time on a day is the union of its intervals within the day, exact, then
//!   rounded **down** to whole seconds. Days where that is 0 s have no `DeviceDay`.
//! - A day's `active_devices` are its `DeviceDay`s (devices online ≥ 1 s that day), its
//!   `device_seconds` their sum (so totals always equal the detail rows' sum).
//! - `peak_devices` is the largest number of those active devices online at the same
//!   instant (intervals are half-open: one ending when another starts is not
//!   concurrent). A device online less than a second that day does not count towards the
//!   peak either, so `peak_devices <= active_devices`.
//! - Time outside the requested days is clipped away; gaps are no usage: nothing is
//!   ever invented.
//! - An interval still open counts up to its shard's last successful sync (`resolve`),
//!   never up to now.

use std::collections::BTreeMap;
use time::{Date, OffsetDateTime, Time};

/// One observed online span of one node; `end` already resolved (see `resolve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub node_id: i64,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

/// Resolves a stored interval: an open one (`ended == None`) counts up to `known_until`.
/// None when nothing of it is known (the resolved end is not after the start).
pub fn resolve(
    node_id: i64,
    started: OffsetDateTime,
    ended: Option<OffsetDateTime>,
    known_until: OffsetDateTime,
) -> Option<Interval> {
    let end = ended.unwrap_or(known_until);
    (end > started).then_some(Interval {
        node_id,
        start: started,
        end,
    })
}

/// A device's online time within one UTC day, whole seconds (rounded down), > 0 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceDay {
    pub node_id: i64,
    pub day: Date,
    pub seconds: i64,
}

/// One UTC day's totals. Every day of the requested range appears, zeros included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayTotals {
    pub day: Date,
    pub active_devices: i32,
    pub device_seconds: i64,
    pub peak_devices: i32,
}

fn midnight(d: Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_utc()
}

fn next_day(d: Date) -> Date {
    d.next_day().expect("a date before 9999-12-31")
}

/// Each node's intervals merged (overlapping or touching ones become one) and clipped
/// to `[from, to)`, sorted by node and start.
fn merged(intervals: &[Interval], from: OffsetDateTime, to: OffsetDateTime) -> Vec<Interval> {
    let mut sorted: Vec<Interval> = intervals
        .iter()
        .filter_map(|i| {
            let start = i.start.max(from);
            let end = i.end.min(to);
            (end > start).then_some(Interval {
                node_id: i.node_id,
                start,
                end,
            })
        })
        .collect();
    sorted.sort_by_key(|i| (i.node_id, i.start, i.end));
    let mut out: Vec<Interval> = Vec::with_capacity(sorted.len());
    for i in sorted {
        match out.last_mut() {
            Some(last) if last.node_id == i.node_id && i.start <= last.end => {
                last.end = last.end.max(i.end);
            }
            _ => out.push(i),
        }
    }
    out
}

/// Rolls intervals up into the days `[from, to_exclusive)` (UTC).
pub fn rollup(
    intervals: &[Interval],
    from: Date,
    to_exclusive: Date,
) -> (Vec<DeviceDay>, Vec<DayTotals>) {
    if from >= to_exclusive {
        return (Vec::new(), Vec::new());
    }
    // Each merged interval's pieces, one per day it touches.
    let mut pieces: BTreeMap<Date, Vec<Interval>> = BTreeMap::new();
    for i in merged(intervals, midnight(from), midnight(to_exclusive)) {
        let mut day = i.start.date();
        loop {
            let day_end = midnight(next_day(day));
            let start = i.start.max(midnight(day));
            let end = i.end.min(day_end);
            if end > start {
                pieces.entry(day).or_default().push(Interval {
                    node_id: i.node_id,
                    start,
                    end,
                });
            }
            if i.end <= day_end {
                break;
            }
            day = next_day(day);
        }
    }

    let mut devices = Vec::new();
    let mut totals = Vec::new();
    let mut day = from;
    while day < to_exclusive {
        let today = pieces.remove(&day).unwrap_or_default();
        // Exact time per node (pieces of one node are disjoint after merging).
        let mut per_node: BTreeMap<i64, time::Duration> = BTreeMap::new();
        for p in &today {
            *per_node.entry(p.node_id).or_insert(time::Duration::ZERO) += p.end - p.start;
        }
        let mut active = 0;
        let mut sum = 0;
        for (&node_id, d) in &per_node {
            let seconds = d.whole_seconds();
            if seconds > 0 {
                devices.push(DeviceDay {
                    node_id,
                    day,
                    seconds,
                });
                active += 1;
                sum += seconds;
            }
        }
        // The peak over active devices: +1 at each start, -1 at each end, ends first at
        // the same instant (half-open intervals).
        let mut events: Vec<(OffsetDateTime, i32)> = today
            .iter()
            .filter(|p| per_node[&p.node_id].whole_seconds() > 0)
            .flat_map(|p| [(p.start, 1), (p.end, -1)])
            .collect();
        events.sort();
        let (mut now, mut peak) = (0, 0);
        for (_, delta) in events {
            now += delta;
            peak = peak.max(now);
        }
        totals.push(DayTotals {
            day,
            active_devices: active,
            device_seconds: sum,
            peak_devices: peak,
        });
        day = next_day(day);
    }
    (devices, totals)
}

/// A billing month, e.g. parsed from "2026-11".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: time::Month,
}

impl Month {
    /// Strictly `YYYY-MM`, years 2000 to 9999.
    pub fn parse(s: &str) -> Result<Month, String> {
        let refuse = || format!("“{s}” is not a month; write it as YYYY-MM, e.g. 2026-11.");
        let (y, m) = s.split_once('-').ok_or_else(refuse)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(refuse());
        }
        let year: i32 = y.parse().map_err(|_| refuse())?;
        let month: u8 = m.parse().map_err(|_| refuse())?;
        if !(2000..=9999).contains(&year) {
            return Err(refuse());
        }
        let month = time::Month::try_from(month).map_err(|_| refuse())?;
        Ok(Month { year, month })
    }

    pub fn first_day(self) -> Date {
        Date::from_calendar_date(self.year, self.month, 1).expect("a valid month")
    }

    pub fn next(self) -> Month {
        match self.month {
            time::Month::December => Month {
                year: self.year + 1,
                month: time::Month::January,
            },
            m => Month {
                year: self.year,
                month: m.next(),
            },
        }
    }

    pub fn prev(self) -> Month {
        match self.month {
            time::Month::January => Month {
                year: self.year - 1,
                month: time::Month::December,
            },
            m => Month {
                year: self.year,
                month: m.previous(),
            },
        }
    }

    /// The first day of the next month.
    pub fn end_exclusive(self) -> Date {
        self.next().first_day()
    }

    pub fn containing(d: Date) -> Month {
        Month {
            year: d.year(),
            month: d.month(),
        }
    }

    pub fn days(self) -> impl Iterator<Item = Date> {
        let end = self.end_exclusive();
        std::iter::successors(Some(self.first_day()), |d| d.next_day())
            .take_while(move |d| *d < end)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, u8::from(self.month))
    }
}

/// Hours with two decimals, rounded half up, from whole seconds (≥ 0): 5400 → "1.50",
/// 17 → "0.00", 18 → "0.01" (0.005 h rounds up). Integer arithmetic only.
pub fn hours_2dp(seconds: i64) -> String {
    let hundredths = (seconds.max(0) * 100 + 1800) / 3600;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// A month's totals from its days and device-days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MonthTotals {
    /// Distinct devices with any device-day.
    pub active_devices: i32,
    pub device_seconds: i64,
    /// The highest daily peak.
    pub peak_devices: i32,
    pub days_with_usage: i32,
}

pub fn month_totals(days: &[DayTotals], devices: &[DeviceDay]) -> MonthTotals {
    let distinct: std::collections::BTreeSet<i64> = devices.iter().map(|d| d.node_id).collect();
    MonthTotals {
        active_devices: distinct.len() as i32,
        device_seconds: devices.iter().map(|d| d.seconds).sum(),
        peak_devices: days.iter().map(|d| d.peak_devices).max().unwrap_or(0),
        days_with_usage: days.iter().filter(|d| d.active_devices > 0).count() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::{date, datetime};

    fn i(node_id: i64, start: OffsetDateTime, end: OffsetDateTime) -> Interval {
        Interval {
            node_id,
            start,
            end,
        }
    }

    fn dd(node_id: i64, day: Date, seconds: i64) -> DeviceDay {
        DeviceDay {
            node_id,
            day,
            seconds,
        }
    }

    #[test]
    fn an_interval_crossing_midnight_is_split_there() {
        let (devices, totals) = rollup(
            &[i(
                1,
                datetime!(2026-11-05 23:00 UTC),
                datetime!(2026-11-06 01:30 UTC),
            )],
            date!(2026 - 11 - 05),
            date!(2026 - 11 - 07),
        );
        assert_eq!(
            devices,
            [
                dd(1, date!(2026 - 11 - 05), 3600),
                dd(1, date!(2026 - 11 - 06), 5400)
            ]
        );
        assert_eq!(totals.len(), 2);
        assert_eq!(totals[1].device_seconds, 5400);
    }

    #[test]
    fn month_and_year_ends_are_midnights_too() {
        let (devices, _) = rollup(
            &[
                i(
                    1,
                    datetime!(2026-11-30 23:59:30 UTC),
                    datetime!(2026-12-01 00:00:45 UTC),
                ),
                i(
                    2,
                    datetime!(2026-12-31 23:00 UTC),
                    datetime!(2027-01-01 00:10 UTC),
                ),
            ],
            date!(2026 - 11 - 30),
            date!(2027 - 01 - 02),
        );
        assert_eq!(
            devices,
            [
                dd(1, date!(2026 - 11 - 30), 30),
                dd(1, date!(2026 - 12 - 01), 45),
                dd(2, date!(2026 - 12 - 31), 3600),
                dd(2, date!(2027 - 01 - 01), 600),
            ]
        );
        let (leap, _) = rollup(
            &[i(
                3,
                datetime!(2028-02-28 12:00 UTC),
                datetime!(2028-03-01 12:00 UTC),
            )],
            date!(2028 - 02 - 28),
            date!(2028 - 03 - 02),
        );
        assert_eq!(leap.len(), 3, "28 Feb, the leap day, 1 Mar");
        assert_eq!(leap[1], dd(3, date!(2028 - 02 - 29), 86400));
    }

    #[test]
    fn overlapping_and_repeated_reports_count_once() {
        let a = datetime!(2026-11-05 10:00 UTC);
        let (devices, totals) = rollup(
            &[
                i(1, a, a + time::Duration::hours(2)),
                i(
                    1,
                    a + time::Duration::hours(1),
                    a + time::Duration::hours(3),
                ),
                i(1, a, a + time::Duration::hours(2)),
                // Touching: no gap, no double count.
                i(
                    1,
                    a + time::Duration::hours(3),
                    a + time::Duration::hours(4),
                ),
            ],
            date!(2026 - 11 - 05),
            date!(2026 - 11 - 06),
        );
        assert_eq!(devices, [dd(1, date!(2026 - 11 - 05), 4 * 3600)]);
        assert_eq!(
            totals[0].peak_devices, 1,
            "one device, however often reported"
        );
    }

    #[test]
    fn the_peak_is_devices_online_at_the_same_instant() {
        let a = datetime!(2026-11-05 10:00 UTC);
        let h = time::Duration::hours;
        let (_, totals) = rollup(
            &[
                i(1, a, a + h(2)),
                i(2, a + h(1), a + h(3)),
                // Starts when 1 ends: not concurrent with it.
                i(3, a + h(2), a + h(4)),
                // Less than a second: neither active nor in the peak.
                i(4, a + h(1), a + h(1) + time::Duration::milliseconds(400)),
            ],
            date!(2026 - 11 - 05),
            date!(2026 - 11 - 06),
        );
        assert_eq!(
            totals[0],
            DayTotals {
                day: date!(2026 - 11 - 05),
                active_devices: 3,
                device_seconds: 6 * 3600,
                peak_devices: 2
            }
        );
    }

    #[test]
    fn time_outside_the_days_is_clipped_and_gaps_are_no_usage() {
        let (devices, totals) = rollup(
            &[i(
                1,
                datetime!(2026-11-01 00:00 UTC),
                datetime!(2026-11-10 00:00 UTC),
            )],
            date!(2026 - 11 - 03),
            date!(2026 - 11 - 05),
        );
        assert_eq!(devices.len(), 2);
        assert!(devices.iter().all(|d| d.seconds == 86400));
        let (none, totals_none) = rollup(&[], date!(2026 - 11 - 03), date!(2026 - 11 - 05));
        assert!(none.is_empty());
        assert_eq!(
            totals_none.len(),
            2,
            "every day of the range, zeros included"
        );
        assert_eq!(totals_none[0].active_devices, 0);
        assert_eq!(totals.len(), 2);
    }

    #[test]
    fn time_the_portal_could_not_see_is_not_counted() {
        // The portal was down from 12:00 to 15:00: the sync ended the device's interval
        // at its last good sync before (11:59:50) and opened a new one at its first
        // after (15:00:05). Only what was observed counts.
        let (devices, totals) = rollup(
            &[
                i(
                    1,
                    datetime!(2026-11-05 11:00 UTC),
                    datetime!(2026-11-05 11:59:50 UTC),
                ),
                i(
                    1,
                    datetime!(2026-11-05 15:00:05 UTC),
                    datetime!(2026-11-05 16:00:05 UTC),
                ),
            ],
            date!(2026 - 11 - 05),
            date!(2026 - 11 - 06),
        );
        assert_eq!(devices, [dd(1, date!(2026 - 11 - 05), 3590 + 3600)]);
        assert_eq!(totals[0].peak_devices, 1);
    }

    #[test]
    fn an_open_interval_counts_up_to_the_last_sync() {
        let s = datetime!(2026-11-05 10:00 UTC);
        let known = datetime!(2026-11-05 10:05 UTC);
        assert_eq!(resolve(1, s, None, known), Some(i(1, s, known)));
        let ended = datetime!(2026-11-05 10:01 UTC);
        assert_eq!(resolve(1, s, Some(ended), known), Some(i(1, s, ended)));
        assert_eq!(resolve(1, s, None, s - time::Duration::minutes(1)), None);
        assert_eq!(resolve(1, s, Some(s), known), None);
    }

    #[test]
    fn seconds_are_rounded_down_per_day() {
        let s = datetime!(2026-11-05 10:00 UTC);
        let (devices, _) = rollup(
            &[i(1, s, s + time::Duration::milliseconds(2999))],
            date!(2026 - 11 - 05),
            date!(2026 - 11 - 06),
        );
        assert_eq!(devices, [dd(1, date!(2026 - 11 - 05), 2)]);
    }

    #[test]
    fn months_parse_strictly_and_walk_across_years() {
        let m = Month::parse("2026-11").unwrap();
        assert_eq!(m.to_string(), "2026-11");
        assert_eq!(m.next().to_string(), "2026-12");
        assert_eq!(m.next().next().to_string(), "2027-01");
        assert_eq!(
            Month::parse("2027-01").unwrap().prev().to_string(),
            "2026-12"
        );
        assert_eq!(m.first_day(), date!(2026 - 11 - 01));
        assert_eq!(m.end_exclusive(), date!(2026 - 12 - 01));
        assert_eq!(m.days().count(), 30);
        assert_eq!(Month::parse("2028-02").unwrap().days().count(), 29);
        assert_eq!(Month::containing(date!(2026 - 11 - 30)), m);
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "1999-12",
            "2026-11-01",
            "",
            "abcd-ef",
        ] {
            let e = Month::parse(bad).unwrap_err();
            assert!(e.contains("YYYY-MM"), "{bad}: {e}");
        }
    }

    #[test]
    fn hours_have_two_decimals_rounded_half_up() {
        assert_eq!(hours_2dp(5400), "1.50");
        assert_eq!(hours_2dp(17), "0.00");
        assert_eq!(hours_2dp(18), "0.01");
        assert_eq!(hours_2dp(0), "0.00");
        assert_eq!(hours_2dp(86400), "24.00");
        assert_eq!(hours_2dp(3_600_000_000), "1000000.00");
    }

    #[test]
    fn a_months_totals_count_each_device_once() {
        let d1 = date!(2026 - 11 - 01);
        let d2 = date!(2026 - 11 - 02);
        let t = month_totals(
            &[
                DayTotals {
                    day: d1,
                    active_devices: 2,
                    device_seconds: 30,
                    peak_devices: 2,
                },
                DayTotals {
                    day: d2,
                    active_devices: 1,
                    device_seconds: 5,
                    peak_devices: 1,
                },
            ],
            &[dd(1, d1, 10), dd(2, d1, 20), dd(1, d2, 5)],
        );
        assert_eq!(
            t,
            MonthTotals {
                active_devices: 2,
                device_seconds: 35,
                peak_devices: 2,
                days_with_usage: 2
            }
        );
    }

    /// Intervals of up to 4 nodes over 3 days from 2026-11-30, in milliseconds.
    fn intervals() -> impl Strategy<Value = Vec<Interval>> {
        let base = datetime!(2026-11-30 00:00 UTC);
        prop::collection::vec(
            (1i64..=4, 0i64..3 * 86_400_000, 1i64..30 * 3_600_000),
            0..12,
        )
        .prop_map(move |v| {
            v.into_iter()
                .map(|(node, start, len)| {
                    let s = base + time::Duration::milliseconds(start);
                    i(node, s, s + time::Duration::milliseconds(len))
                })
                .collect()
        })
    }

    fn union_ms(intervals: &[Interval], node: i64, from: Date, to: Date) -> i128 {
        merged(intervals, midnight(from), midnight(to))
            .iter()
            .filter(|i| i.node_id == node)
            .map(|i| (i.end - i.start).whole_milliseconds())
            .sum()
    }

    proptest! {
        #[test]
        fn rollups_add_up_and_never_invent_time(v in intervals()) {
            let (from, to) = (date!(2026 - 11 - 30), date!(2026 - 12 - 03));
            let (devices, totals) = rollup(&v, from, to);
            prop_assert_eq!(totals.len(), 3);
            prop_assert_eq!(
                totals.iter().map(|t| t.device_seconds).sum::<i64>(),
                devices.iter().map(|d| d.seconds).sum::<i64>()
            );
            for t in &totals {
                prop_assert!(t.peak_devices <= t.active_devices);
                prop_assert_eq!(
                    t.active_devices as usize,
                    devices.iter().filter(|d| d.day == t.day).count()
                );
            }
            for d in &devices {
                prop_assert!(d.seconds > 0 && d.seconds <= 86_400);
            }
            for node in 1..=4 {
                let exact = union_ms(&v, node, from, to);
                let counted: i128 = devices.iter().filter(|d| d.node_id == node)
                    .map(|d| i128::from(d.seconds) * 1000).sum();
                prop_assert!(counted <= exact, "never more than observed");
                prop_assert!(exact - counted < 3 * 1000, "less than a second lost per day");
            }
        }

        #[test]
        fn splitting_or_shuffling_reports_changes_nothing(v in intervals(), cut in 0.0f64..1.0, seed in any::<u64>()) {
            let (from, to) = (date!(2026 - 11 - 30), date!(2026 - 12 - 03));
            let expected = rollup(&v, from, to);
            let mut split = Vec::new();
            for x in &v {
                let len = (x.end - x.start).whole_milliseconds() as f64;
                let mid = x.start + time::Duration::milliseconds((len * cut) as i64);
                split.push(i(x.node_id, x.start, mid));
                split.push(i(x.node_id, mid, x.end));
            }
            // A deterministic shuffle.
            let mut order: Vec<(u64, Interval)> = split.into_iter().enumerate()
                .map(|(n, x)| ((n as u64).wrapping_mul(seed | 1).rotate_left(17), x)).collect();
            order.sort_by_key(|(k, _)| *k);
            let shuffled: Vec<Interval> = order.into_iter().map(|(_, x)| x).collect();
            prop_assert_eq!(rollup(&shuffled, from, to), expected);
        }
    }
}

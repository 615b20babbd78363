//! Online time for billing: a device's observed online intervals rolled up per UTC day
//! (DESIGN.md §7, docs/billing-export.md quotes these rules).
//!
//! - Times are UTC; a day is `[00:00, next 00:00)`. An interval crossing midnight is
//!   split there; a month end (and a year end) is just a midnight.
//! - Overlapping or touching reports of one device are merged first: a device is never
//!   counted twice for the same instant.
//! - A device's time on a day is the union of its intervals within the day, exact, then
//!   rounded **down** to whole seconds. Days where that is 0 s have no `DeviceDay`.
//!   `DeviceDay`s are sorted by day, then node.
//! - A day's `active_devices` are its `DeviceDay`s (devices online ≥ 1 s that day), its
//!   `device_seconds` their sum (so totals always equal the detail rows' sum).
//! - `peak_devices` is the largest number of those active devices online at the same
//!   instant of the day, from their exact (not rounded) intervals. Intervals are
//!   half-open: one ending when another starts is not concurrent. A device online less
//!   than a second that day does not count towards the peak either, so
//!   `peak_devices <= active_devices`.
//! - Time outside the requested days is clipped away; gaps are no usage: nothing is
//!   ever invented.
//! - An interval still open counts up to its shard's last successful sync (`resolve`),
//!   never up to now.
//!
//! [`rollup`] sorts once and then walks the intervals: O(n log n) in the number of
//! intervals, plus one piece per day an interval touches.

use std::collections::BTreeMap;
use time::{Date, OffsetDateTime, Time, UtcOffset};

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
        // The UTC date: an `OffsetDateTime` in another offset has its own `date()`.
        let mut day = i.start.to_offset(UtcOffset::UTC).date();
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
///
/// [`Month::parse`] accepts 2000-01 to 9999-11: the day after 9999-12 is not a `Date`,
/// so that month would have no [`Month::end_exclusive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: time::Month,
}

impl Month {
    /// Strictly `YYYY-MM`, from 2000-01 to 9999-11 (see [`Month`]). The error is a
    /// sentence for the person who typed it.
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
        if (year, month) == (9999, time::Month::December) {
            return Err(refuse());
        }
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
    // i128: `seconds * 100` cannot overflow whatever the input.
    let hundredths = (i128::from(seconds.max(0)) * 100 + 1800) / 3600;
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

    #[test]
    fn the_peak_is_counted_per_day_across_midnight() {
        let h = time::Duration::hours;
        let m0 = datetime!(2026-11-06 00:00 UTC);
        let (devices, totals) = rollup(
            &[
                // Both online over midnight: together on both days.
                i(1, m0 - h(2), m0 + h(2)),
                i(2, m0 - h(1), m0 + h(1)),
                // Joins them just after midnight: three at once on the 6th only.
                i(3, m0, m0 + h(3)),
                // Alone on the 5th, long before the others.
                i(4, m0 - h(20), m0 - h(19)),
            ],
            date!(2026 - 11 - 05),
            date!(2026 - 11 - 07),
        );
        assert_eq!(
            totals.iter().map(|t| t.peak_devices).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(
            totals.iter().map(|t| t.active_devices).collect::<Vec<_>>(),
            [3, 3]
        );
        assert_eq!(devices.len(), 6);
    }

    #[test]
    fn a_device_ending_at_midnight_is_not_online_the_next_day() {
        let (devices, totals) = rollup(
            &[i(
                1,
                datetime!(2026-11-05 23:00 UTC),
                datetime!(2026-11-06 00:00 UTC),
            )],
            date!(2026 - 11 - 05),
            date!(2026 - 11 - 07),
        );
        assert_eq!(devices, [dd(1, date!(2026 - 11 - 05), 3600)]);
        assert_eq!(totals[1].active_devices, 0);
        assert_eq!(totals[1].peak_devices, 0);
    }

    #[test]
    fn times_in_another_offset_count_on_their_utc_days() {
        // 00:30 on the 6th in UTC+02:00 is 22:30 on the 5th in UTC.
        let start = datetime!(2026-11-06 00:30 +02:00);
        let (devices, _) = rollup(
            &[i(1, start, start + time::Duration::hours(2))],
            date!(2026 - 11 - 05),
            date!(2026 - 11 - 07),
        );
        assert_eq!(
            devices,
            [
                dd(1, date!(2026 - 11 - 05), 5400),
                dd(1, date!(2026 - 11 - 06), 1800)
            ]
        );
    }

    #[test]
    fn an_empty_or_inverted_range_has_no_days() {
        let s = datetime!(2026-11-05 10:00 UTC);
        let v = [i(1, s, s + time::Duration::hours(1))];
        let d = date!(2026 - 11 - 05);
        assert_eq!(rollup(&v, d, d), (vec![], vec![]));
        assert_eq!(rollup(&v, date!(2026 - 11 - 06), d), (vec![], vec![]));
    }

    #[test]
    fn the_last_representable_month_is_9999_11() {
        let m = Month::parse("9999-11").unwrap();
        assert_eq!(m.end_exclusive(), date!(9999 - 12 - 01));
        assert_eq!(m.days().count(), 30);
        // Its end would be 10000-01-01, which is not a `Date`: refused, not a panic.
        assert!(Month::parse("9999-12").unwrap_err().contains("YYYY-MM"));
        assert_eq!(
            Month::parse("2026-13").unwrap_err(),
            "“2026-13” is not a month; write it as YYYY-MM, e.g. 2026-11."
        );
        let first = Month::parse("2000-01").unwrap();
        assert_eq!(first.prev().to_string(), "1999-12");
        assert_eq!(
            Month::parse("2026-12").unwrap().end_exclusive(),
            date!(2027 - 01 - 01)
        );
        assert!(Month::parse("2026-11") < Month::parse("2026-12"));
        assert!(Month::parse("2026-12") < Month::parse("2027-01"));
        assert!(Month::parse(" 2026-11").is_err(), "no trimming here");
        assert!(Month::parse("+026-11").is_err());
    }

    #[test]
    fn hours_never_overflow() {
        assert_eq!(hours_2dp(i64::MAX), "2562047788015215.50");
        assert_eq!(hours_2dp(-5), "0.00");
    }

    #[test]
    fn an_empty_month_has_zero_totals() {
        assert_eq!(month_totals(&[], &[]), MonthTotals::default());
    }
}

#[cfg(test)]
mod properties {
    //! Property tests against a reference written independently of `rollup`: it clips
    //! every report to each day first and merges afterwards (`rollup` merges first and
    //! splits afterwards), and finds the peak by counting at every instant a device
    //! comes online.

    use super::*;
    use proptest::prelude::*;
    use time::macros::{date, datetime};

    const fn ms(n: i64) -> time::Duration {
        time::Duration::milliseconds(n)
    }

    const FROM: Date = date!(2026 - 11 - 29);
    const TO: Date = date!(2026 - 12 - 03);
    const DAYS: usize = 4;

    fn base() -> OffsetDateTime {
        datetime!(2026-11-28 12:00 UTC)
    }

    /// Reports of up to 5 nodes around the range (starting half a day before it, ending
    /// up to a day after it), so clipping, midnights and the month end all occur. Times
    /// are either whole half hours, so reports often repeat, overlap or touch exactly,
    /// or arbitrary milliseconds, so rounding matters.
    fn interval() -> impl Strategy<Value = Interval> {
        let span = (DAYS as i64 + 1) * 86_400_000;
        prop_oneof![
            (1i64..=5, 0i64..span / 1_800_000, 1i64..=60).prop_map(|(n, s, l)| {
                let start = base() + ms(1_800_000 * s);
                Interval {
                    node_id: n,
                    start,
                    end: start + ms(1_800_000 * l),
                }
            }),
            (1i64..=5, 0i64..span, 1i64..4 * 3_600_000).prop_map(|(n, s, l)| {
                let start = base() + ms(s);
                Interval {
                    node_id: n,
                    start,
                    end: start + ms(l),
                }
            }),
            // Sub-second blips.
            (1i64..=5, 0i64..span, 1i64..1000).prop_map(|(n, s, l)| {
                let start = base() + ms(s);
                Interval {
                    node_id: n,
                    start,
                    end: start + ms(l),
                }
            }),
        ]
    }

    fn intervals() -> impl Strategy<Value = Vec<Interval>> {
        prop::collection::vec(interval(), 0..16)
    }

    fn days() -> Vec<Date> {
        let mut d = vec![FROM];
        while d.len() < DAYS {
            d.push(d[d.len() - 1].next_day().unwrap());
        }
        d
    }

    /// One node's reports clipped to one day, then merged: its exact union, as spans.
    fn union_in_day(v: &[Interval], node: i64, day: Date) -> Vec<(OffsetDateTime, OffsetDateTime)> {
        let (lo, hi) = (midnight(day), midnight(day.next_day().unwrap()));
        let mut spans: Vec<_> = v
            .iter()
            .filter(|x| x.node_id == node)
            .map(|x| (x.start.max(lo), x.end.min(hi)))
            .filter(|(s, e)| s < e)
            .collect();
        spans.sort();
        let mut out: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
        for (s, e) in spans {
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    fn exact_ms(spans: &[(OffsetDateTime, OffsetDateTime)]) -> i128 {
        spans
            .iter()
            .map(|(s, e)| (*e - *s).whole_milliseconds())
            .sum()
    }

    /// The reference: DeviceDays and each day's peak, the slow and obvious way.
    fn reference(v: &[Interval]) -> (Vec<DeviceDay>, Vec<i32>) {
        let mut devices = Vec::new();
        let mut peaks = Vec::new();
        for day in days() {
            let mut active = Vec::new();
            for node in 1..=5 {
                let spans = union_in_day(v, node, day);
                let seconds = (exact_ms(&spans) / 1000) as i64;
                if seconds > 0 {
                    devices.push(DeviceDay {
                        node_id: node,
                        day,
                        seconds,
                    });
                    active.push(spans);
                }
            }
            let peak = active
                .iter()
                .flatten()
                .map(|(t, _)| {
                    active
                        .iter()
                        .filter(|spans| spans.iter().any(|(s, e)| s <= t && t < e))
                        .count() as i32
                })
                .max()
                .unwrap_or(0);
            peaks.push(peak);
        }
        (devices, peaks)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn rollup_agrees_with_the_reference(v in intervals()) {
            let (devices, totals) = rollup(&v, FROM, TO);
            let (expected_devices, expected_peaks) = reference(&v);
            prop_assert_eq!(&devices, &expected_devices);
            prop_assert_eq!(totals.iter().map(|t| t.day).collect::<Vec<_>>(), days());
            prop_assert_eq!(
                totals.iter().map(|t| t.peak_devices).collect::<Vec<_>>(),
                expected_peaks
            );
        }

        #[test]
        fn day_totals_are_the_sums_of_the_detail_rows(v in intervals()) {
            let (devices, totals) = rollup(&v, FROM, TO);
            prop_assert_eq!(
                totals.iter().map(|t| t.device_seconds).sum::<i64>(),
                devices.iter().map(|d| d.seconds).sum::<i64>()
            );
            for t in &totals {
                let rows: Vec<&DeviceDay> = devices.iter().filter(|d| d.day == t.day).collect();
                prop_assert_eq!(t.active_devices as usize, rows.len());
                prop_assert_eq!(t.device_seconds, rows.iter().map(|d| d.seconds).sum::<i64>());
                // The documented bound: only devices active that day count at the peak.
                prop_assert!(0 <= t.peak_devices && t.peak_devices <= t.active_devices);
                prop_assert_eq!(t.active_devices > 0, t.peak_devices > 0);
            }
            prop_assert!(devices.windows(2).all(|w| (w[0].day, w[0].node_id) < (w[1].day, w[1].node_id)));
        }

        #[test]
        fn a_device_day_is_at_most_a_day(v in intervals()) {
            let (devices, _) = rollup(&v, FROM, TO);
            for d in &devices {
                prop_assert!(0 < d.seconds && d.seconds <= 86_400);
            }
        }

        #[test]
        fn less_than_a_second_per_day_touched_is_lost(v in intervals()) {
            let (devices, _) = rollup(&v, FROM, TO);
            for node in 1..=5 {
                // The node's exact union over the whole range, merged once.
                let exact: i128 = merged(&v, midnight(FROM), midnight(TO))
                    .iter()
                    .filter(|x| x.node_id == node)
                    .map(|x| (x.end - x.start).whole_milliseconds())
                    .sum();
                let touched = days()
                    .into_iter()
                    .filter(|d| !union_in_day(&v, node, *d).is_empty())
                    .count() as i128;
                let counted: i128 = devices
                    .iter()
                    .filter(|d| d.node_id == node)
                    .map(|d| i128::from(d.seconds) * 1000)
                    .sum();
                prop_assert!(counted <= exact, "never more than observed");
                prop_assert!(exact - counted < touched.max(1) * 1000);
                if touched == 0 {
                    prop_assert_eq!(counted, 0);
                }
            }
        }

        #[test]
        fn splitting_a_report_in_two_touching_halves_changes_nothing(
            v in intervals(),
            pick in any::<prop::sample::Index>(),
            cut in 0.0f64..1.0,
        ) {
            prop_assume!(!v.is_empty());
            let n = pick.index(v.len());
            let x = v[n];
            let len = (x.end - x.start).whole_milliseconds() as f64;
            let mid = x.start + ms((len * cut) as i64);
            let mut split = v.clone();
            split[n].end = mid;
            split.push(Interval { start: mid, ..x });
            prop_assert_eq!(rollup(&split, FROM, TO), rollup(&v, FROM, TO));
        }

        #[test]
        fn the_order_of_the_reports_never_matters(
            (v, shuffled) in intervals().prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        ) {
            prop_assert_eq!(rollup(&shuffled, FROM, TO), rollup(&v, FROM, TO));
        }

        #[test]
        fn repeating_every_report_changes_nothing(v in intervals()) {
            let twice: Vec<Interval> = v.iter().chain(v.iter()).copied().collect();
            prop_assert_eq!(rollup(&twice, FROM, TO), rollup(&v, FROM, TO));
        }

        #[test]
        fn rolling_up_day_by_day_gives_the_same_rows(v in intervals()) {
            // The usage job recounts single days; the export reads whole months.
            let (devices, totals) = rollup(&v, FROM, TO);
            let (mut by_day, mut totals_by_day) = (Vec::new(), Vec::new());
            for d in days() {
                let (dv, t) = rollup(&v, d, d.next_day().unwrap());
                by_day.extend(dv);
                totals_by_day.extend(t);
            }
            prop_assert_eq!(devices, by_day);
            prop_assert_eq!(totals, totals_by_day);
        }

        #[test]
        fn month_totals_follow_their_days(v in intervals()) {
            let (devices, totals) = rollup(&v, FROM, TO);
            let m = month_totals(&totals, &devices);
            prop_assert_eq!(m.device_seconds, totals.iter().map(|t| t.device_seconds).sum::<i64>());
            prop_assert_eq!(m.peak_devices, totals.iter().map(|t| t.peak_devices).max().unwrap_or(0));
            prop_assert!(m.peak_devices <= m.active_devices);
            prop_assert!(m.active_devices <= 5);
            prop_assert!(m.days_with_usage as usize <= DAYS);
        }

        #[test]
        fn resolve_never_yields_an_empty_interval(
            start in 0i64..1_000_000,
            len in -1_000i64..1_000_000,
            open in any::<bool>(),
        ) {
            let started = base() + ms(start);
            let end = started + ms(len);
            let got = if open {
                resolve(7, started, None, end)
            } else {
                // A closed interval ignores `known_until`.
                resolve(7, started, Some(end), base())
            };
            match got {
                Some(x) => {
                    prop_assert!(len > 0);
                    prop_assert_eq!(x, Interval { node_id: 7, start: started, end });
                }
                None => prop_assert!(len <= 0),
            }
        }

        #[test]
        fn hours_are_the_seconds_rounded_half_up(seconds in 0i64..10_000_000_000) {
            let text = hours_2dp(seconds);
            let (whole, frac) = text.split_once('.').unwrap();
            prop_assert_eq!(frac.len(), 2);
            let hundredths: i128 = whole.parse::<i128>().unwrap() * 100 + frac.parse::<i128>().unwrap();
            // |hundredths - seconds/36| <= 1/2, ties going up.
            let diff = hundredths * 36 - i128::from(seconds);
            prop_assert!(-18 < diff && diff <= 18, "{} s -> {}", seconds, text);
        }

        #[test]
        fn months_print_as_they_parse(y in 2000i32..=9999, m in 1u8..=12) {
            let text = format!("{y:04}-{m:02}");
            match Month::parse(&text) {
                Ok(month) => {
                    prop_assert_eq!(month.to_string(), text.clone());
                    prop_assert_eq!(month.next().prev(), month);
                    prop_assert_eq!(month.days().next(), Some(month.first_day()));
                    prop_assert_eq!(month.days().last().unwrap().next_day(), Some(month.end_exclusive()));
                    prop_assert!(month.days().all(|d| Month::containing(d) == month));
                }
                Err(_) => prop_assert_eq!((y, m), (9999, 12)),
            }
        }
    }
}

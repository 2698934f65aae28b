//! Schedules from config: a cron expression (`cron` crate, six fields `sec min hour day month
//! weekday`) read in Japan time. Japan has kept no daylight saving time since 1951, so UTC+9 is
//! exact. Used by the national server's yearly reconciliation and the nodes' digests; a bad
//! expression stops start-up with a message naming the flag and the expression.

use chrono::{DateTime, FixedOffset, Utc};

pub struct Schedule(cron::Schedule);

pub fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("UTC+9 is a valid offset")
}

impl Schedule {
    /// `flag` and `example` are for the message when `expression` is not a schedule.
    pub fn parse(flag: &str, expression: &str, example: &str) -> Result<Self, String> {
        expression.parse::<cron::Schedule>().map(Self).map_err(|e| {
            format!(
                "{flag} {expression:?} is not a valid schedule ({e}); expected six fields \
                 `sec min hour day month weekday`, e.g. {example:?}"
            )
        })
    }

    /// The next time after now, in Japan time.
    pub fn next(&self) -> Option<DateTime<FixedOffset>> {
        self.0.upcoming(jst()).next()
    }

    /// Sleeps until the next time; `None` when the schedule never fires again.
    pub async fn wait_next(&self) -> Option<DateTime<FixedOffset>> {
        let next = self.next()?;
        let wait = (next.with_timezone(&Utc) - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_in_japan_time_and_bad_ones_are_named() {
        let s = Schedule::parse("--x", "0 0 3 1 4 *", "0 0 3 1 4 *").unwrap();
        let next = s.next().unwrap();
        assert_eq!(next.format("%m-%d %H:%M:%S %:z").to_string(), "04-01 03:00:00 +09:00");
        let error = Schedule::parse("--digest-weekly-cron", "30 9 * * Mon", "0 0 7 * * Mon").err().unwrap();
        assert!(
            error.contains("--digest-weekly-cron \"30 9 * * Mon\"") && error.contains("six fields"),
            "{error}"
        );
    }
}

//! Crons declared in code (Convex's `cronJobs()`): each runs a mutation or an action through
//! the scheduler on a schedule — an interval, or a cron expression in UTC (`hourly`, `daily`,
//! `weekly` and `monthly` are expressions too).
//!
//! Each cron has a document in the `_cron_jobs` system table (`name`, `schedule`, `function`,
//! `args`, `nextRun`, and `lastRun`: the time and the scheduled function of its last tick, whose
//! outcome is in `_scheduled_functions`). The executor ticks a cron in one transaction: it
//! schedules the job and moves `nextRun` on together, so a tick is scheduled once, whatever the
//! restarts or the nodes (a second executor's transaction would conflict). Ticks missed while
//! no executor ran are run once, at once. A cron no longer declared loses its document.

use std::collections::BTreeMap;
use std::time::Duration;

use keel_db::{BY_NAME, CRON_JOBS, DbError, Document, IndexRange, SCHEDULED_FUNCTIONS};
use keel_protocol::{CanonicalPath, SchedulableFunction};
use keel_values::{Object, Value};
use serde::Serialize;

use super::job::{new_job, now_ms};
use crate::backend::Backend;

const MINUTE_MS: f64 = 60_000.0;
/// How many days ahead a cron expression's next time is searched for (an expression that never
/// matches, such as 30 February, has none).
const SEARCH_DAYS: i64 = 366 * 5;
/// Most crons an app may declare.
const MAX_CRONS: usize = 1_000;

/// The app's crons, declared in code beside its functions.
///
/// ```
/// use std::time::Duration;
/// use keel_backend_core::Crons;
/// use keel_values::obj;
///
/// let mut crons = Crons::new();
/// crons.interval("clear presence", Duration::from_secs(300), "presence:clear", obj! {});
/// crons.daily("daily report", 9, 30, "reports:send", obj! { "to" => "team" });
/// crons.cron("weekday mornings", "0 7 * * 1-5", "alarms:ring", obj! {});
/// ```
#[derive(Clone, Debug, Default)]
pub struct Crons {
    jobs: BTreeMap<String, CronJob>,
}

#[derive(Clone, Debug)]
struct CronJob {
    schedule: CronSchedule,
    path: CanonicalPath,
    args: Object,
}

impl Crons {
    /// No crons.
    pub fn new() -> Crons {
        Crons::default()
    }

    /// Runs `function` (a path, or a typed mutation or action reference taking `args`) with
    /// `args` on `schedule`. Panics if the name is taken, the path malformed
    /// or the arguments not an object (programming errors, like a function registered twice).
    pub fn add<A: Serialize>(
        &mut self,
        name: &str,
        schedule: CronSchedule,
        function: impl SchedulableFunction<A>,
        args: A,
    ) -> &mut Self {
        let path = function.path();
        let path = keel_protocol::normalize_udf_path(path)
            .unwrap_or_else(|e| panic!("cron {name:?}: invalid function path {path:?}: {e}"));
        let args = keel_values::to_args(&args)
            .unwrap_or_else(|e| panic!("cron {name:?}: invalid arguments: {e}"));
        assert!(!name.is_empty(), "a cron needs a name");
        assert!(self.jobs.len() < MAX_CRONS, "at most {MAX_CRONS} crons");
        let job = CronJob {
            schedule,
            path,
            args,
        };
        assert!(
            self.jobs.insert(name.to_owned(), job).is_none(),
            "cron {name:?} is declared twice"
        );
        self
    }

    /// Runs `path` every `every` (at least a second), the first time `every` after start.
    pub fn interval<A: Serialize>(
        &mut self,
        name: &str,
        every: Duration,
        function: impl SchedulableFunction<A>,
        args: A,
    ) -> &mut Self {
        self.add(name, CronSchedule::interval(every), function, args)
    }

    /// Runs `path` every hour at `minute` (UTC).
    pub fn hourly<A: Serialize>(
        &mut self,
        name: &str,
        minute: u32,
        function: impl SchedulableFunction<A>,
        args: A,
    ) -> &mut Self {
        self.add(
            name,
            parse_or_panic(&format!("{minute} * * * *")),
            function,
            args,
        )
    }

    /// Runs `path` every day at `hour`:`minute` (UTC).
    pub fn daily<A: Serialize>(
        &mut self,
        name: &str,
        hour: u32,
        minute: u32,
        function: impl SchedulableFunction<A>,
        args: A,
    ) -> &mut Self {
        self.add(
            name,
            parse_or_panic(&format!("{minute} {hour} * * *")),
            function,
            args,
        )
    }

    /// Runs `path` every week on `weekday` (0 Sunday … 6 Saturday) at `hour`:`minute` (UTC).
    pub fn weekly<A: Serialize>(
        &mut self,
        name: &str,
        weekday: u32,
        hour: u32,
        minute: u32,
        function: impl SchedulableFunction<A>,
        args: A,
    ) -> &mut Self {
        let spec = format!("{minute} {hour} * * {weekday}");
        self.add(name, parse_or_panic(&spec), function, args)
    }

    /// Runs `path` every month on `day` (1–31; a month without that day is skipped) at
    /// `hour`:`minute` (UTC).
    pub fn monthly<A: Serialize>(
        &mut self,
        name: &str,
        day: u32,
        hour: u32,
        minute: u32,
        function: impl SchedulableFunction<A>,
        args: A,
    ) -> &mut Self {
        let spec = format!("{minute} {hour} {day} * *");
        self.add(name, parse_or_panic(&spec), function, args)
    }

    /// Runs `path` on a cron expression (UTC; see [`CronSchedule::parse`]). Panics if it is
    /// malformed.
    pub fn cron<A: Serialize>(
        &mut self,
        name: &str,
        spec: &str,
        function: impl SchedulableFunction<A>,
        args: A,
    ) -> &mut Self {
        self.add(name, parse_or_panic(spec), function, args)
    }

    /// The paths the crons run (to check them against the registry).
    pub(crate) fn paths(&self) -> impl Iterator<Item = (&str, &CanonicalPath)> {
        self.jobs
            .iter()
            .map(|(name, job)| (name.as_str(), &job.path))
    }

    /// Whether no cron is declared.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

fn parse_or_panic(spec: &str) -> CronSchedule {
    CronSchedule::parse(spec).unwrap_or_else(|e| panic!("{e}"))
}

/// When a cron runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CronSchedule {
    /// Every so long.
    Interval(Duration),
    /// A cron expression (UTC).
    Expression(CronExpression),
}

/// A malformed cron expression, with what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("InvalidCronExpression: {0}")]
pub struct CronError(String);

impl CronSchedule {
    /// Every `every`, at least a second.
    pub fn interval(every: Duration) -> CronSchedule {
        CronSchedule::Interval(every.max(Duration::from_secs(1)))
    }

    /// Parses a cron expression of five fields, in UTC: minute (0–59), hour (0–23), day of the
    /// month (1–31), month (1–12), day of the week (0–6 from Sunday; 7 is Sunday too). A field
    /// is `*` or a comma-separated list of values, ranges `a-b` and steps (`*/15`, `1-30/2`).
    /// As in cron, when both days are restricted a day matching either runs.
    ///
    /// ```
    /// use keel_backend_core::CronSchedule;
    /// assert!(CronSchedule::parse("*/5 9-17 * * 1-5").is_ok());
    /// assert!(CronSchedule::parse("61 * * * *").is_err());
    /// ```
    pub fn parse(spec: &str) -> Result<CronSchedule, CronError> {
        let fields: Vec<&str> = spec.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(CronError(format!(
                "{spec:?} has {} fields; a cron expression has five (minute hour day month \
                 weekday)",
                fields.len()
            )));
        };
        let mut weekdays = field(weekday, 0, 7, "day of the week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(CronSchedule::Expression(CronExpression {
            spec: fields.join(" "),
            minutes: field(minute, 0, 59, "minute")?,
            hours: field(hour, 0, 23, "hour")?,
            days: field(day, 1, 31, "day of the month")?,
            months: field(month, 1, 12, "month")?,
            weekdays: weekdays & 0x7f,
            any_day: day == "*",
            any_weekday: weekday == "*",
        }))
    }

    /// The first time after `after_ms` (ms since the epoch) this schedule runs, given the
    /// previous planned run (`None` for the first); `None` if it never does.
    pub(crate) fn next(&self, after_ms: f64, previous_ms: Option<f64>) -> Option<f64> {
        match self {
            CronSchedule::Interval(every) => {
                let every = every.as_secs_f64() * 1e3;
                let next = previous_ms.map_or(after_ms + every, |previous| previous + every);
                Some(if next <= after_ms {
                    after_ms + every
                } else {
                    next
                })
            }
            CronSchedule::Expression(expression) => expression.next(after_ms),
        }
    }

    /// How the schedule is shown in `_cron_jobs` (a changed schedule restarts the cron).
    fn describe(&self) -> String {
        match self {
            CronSchedule::Interval(every) => format!("every {}ms", every.as_millis()),
            CronSchedule::Expression(expression) => expression.spec.clone(),
        }
    }
}

/// A parsed cron expression (see [`CronSchedule::parse`]): one bit per allowed value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpression {
    spec: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    any_day: bool,
    any_weekday: bool,
}

impl CronExpression {
    fn next(&self, after_ms: f64) -> Option<f64> {
        // The first whole minute after `after_ms`.
        let start_minute = (after_ms / MINUTE_MS).floor() as i64 + 1;
        let start_day = start_minute.div_euclid(1440);
        for day in start_day..start_day + SEARCH_DAYS {
            if !self.day_matches(day) {
                continue;
            }
            for hour in 0..24i64 {
                if self.hours & (1 << hour) == 0 {
                    continue;
                }
                for minute in 0..60i64 {
                    let at = day * 1440 + hour * 60 + minute;
                    if self.minutes & (1 << minute) != 0 && at >= start_minute {
                        return Some(at as f64 * MINUTE_MS);
                    }
                }
            }
        }
        None
    }

    fn day_matches(&self, days_since_epoch: i64) -> bool {
        let (_, month, day) = civil_from_days(days_since_epoch);
        // 1970-01-01 was a Thursday.
        let weekday = (days_since_epoch + 4).rem_euclid(7);
        if self.months & (1 << month) == 0 {
            return false;
        }
        let by_day = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (false, true) => by_day,
            (true, false) => by_weekday,
            (false, false) => by_day || by_weekday,
        }
    }
}

/// One field of a cron expression as a bit set of the values `min..=max` it allows.
fn field(text: &str, min: u32, max: u32, what: &str) -> Result<u64, CronError> {
    let bad = |detail: &str| CronError(format!("the {what} field {text:?} {detail}"));
    let number = |s: &str| -> Result<u32, CronError> {
        let n: u32 = s
            .parse()
            .map_err(|_| bad("is not a number, a range or *"))?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(bad(&format!("is outside {min}–{max}")))
        }
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| bad("has a malformed step"))?;
                if step == 0 || step > max {
                    return Err(bad("has a step out of range"));
                }
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((low, high)) => (number(low)?, number(high)?),
                None if step > 1 => (number(range)?, max),
                None => {
                    let n = number(range)?;
                    (n, n)
                }
            },
        };
        if low > high {
            return Err(bad("has a range that ends before it starts"));
        }
        for n in (low..=high).step_by(step as usize) {
            bits |= 1 << n;
        }
    }
    Ok(bits)
}

/// The (year, month 1–12, day 1–31) of a day counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let t = keel_values::utc::UtcTime::from_unix_ms(days.saturating_mul(86_400_000));
    (t.year, t.month, t.day)
}

/// Ticks the crons that are due: each in one transaction, schedules its job and moves its
/// `nextRun` on. Brings `_cron_jobs` in line with the declared crons. Returns the next time a
/// cron is due.
pub(crate) async fn tick(backend: &Backend) -> Result<Option<f64>, DbError> {
    let crons = backend.inner.functions.declared_crons();
    let db = &backend.inner.db;
    let mut tx = db.begin();
    let stored = tx
        .system_query(CRON_JOBS)
        .with_index(BY_NAME, |r: IndexRange| r)
        .take(MAX_CRONS * 2)
        .await?;
    let now = now_ms();
    let mut next_due: Option<f64> = None;
    let mut stored_names = Vec::new();
    for document in &stored {
        let name = document.fields.get("name").and_then(Value::as_str);
        match name.and_then(|name| crons.jobs.get(name).map(|job| (name, job))) {
            Some((name, job)) => {
                stored_names.push(name.to_owned());
                if let Some(next) = tick_one(&mut tx, document, job, now).await? {
                    next_due = Some(next_due.map_or(next, |due| due.min(next)));
                }
            }
            None => tx.system_delete(document.id).await?,
        }
    }
    for (name, job) in &crons.jobs {
        if stored_names.iter().any(|stored| stored == name) {
            continue;
        }
        let next = job.schedule.next(now, None);
        let mut fields = describe(name, job);
        fields.insert("nextRun".into(), next.map_or(Value::Null, Value::Float64));
        tx.system_insert(CRON_JOBS, fields).await?;
        if let Some(next) = next {
            next_due = Some(next_due.map_or(next, |due| due.min(next)));
        }
    }
    db.commit(tx).await?;
    Ok(next_due)
}

/// Ticks one stored cron if it is due (or restarts it if its declaration changed); returns its
/// next run.
async fn tick_one(
    tx: &mut keel_db::Transaction,
    document: &Document,
    job: &CronJob,
    now: f64,
) -> Result<Option<f64>, DbError> {
    let name = document
        .fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let declared = describe(name, job);
    let unchanged = ["schedule", "function", "args"]
        .iter()
        .all(|field| document.fields.get(*field) == declared.get(*field));
    let next_run = document.fields.get("nextRun").and_then(Value::as_f64);
    if !unchanged {
        let next = job.schedule.next(now, None);
        let mut fields = declared;
        fields.insert("nextRun".into(), next.map_or(Value::Null, Value::Float64));
        tx.system_patch(document.id, fields).await?;
        return Ok(next);
    }
    let Some(due) = next_run else {
        return Ok(None);
    };
    if due > now {
        return Ok(Some(due));
    }
    let job_id = tx
        .system_insert(
            SCHEDULED_FUNCTIONS,
            new_job(&job.path, job.args.clone(), due),
        )
        .await?;
    let next = job.schedule.next(now, Some(due));
    let mut last = Object::new();
    last.insert("scheduledTime".into(), Value::Float64(due));
    last.insert("scheduledFunction".into(), Value::from(job_id.to_string()));
    let mut fields = Object::new();
    fields.insert("nextRun".into(), next.map_or(Value::Null, Value::Float64));
    fields.insert("lastRun".into(), Value::Object(last));
    tx.system_patch(document.id, fields).await?;
    tracing::debug!(cron = name, job = %job_id, "cron ticked");
    Ok(next)
}

/// A cron's declared fields as stored.
fn describe(name: &str, job: &CronJob) -> Object {
    let mut fields = Object::new();
    fields.insert("name".into(), Value::from(name));
    fields.insert("schedule".into(), Value::from(job.schedule.describe()));
    fields.insert(
        "function".into(),
        Value::from(format!("{}.js:{}", job.path.module, job.path.function)),
    );
    fields.insert(
        "args".into(),
        Value::Array(vec![Value::Object(job.args.clone())]),
    );
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: f64 = 86_400_000.0;

    /// 2026-12-06T04:30:00Z in ms.
    const AT: f64 = 1_796_531_400_000.0;

    fn next(spec: &str, after: f64) -> f64 {
        CronSchedule::parse(spec)
            .and_then(|s| s.next(after, None).ok_or(CronError("never".into())))
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn expressions_run_at_their_next_matching_minute() {
        assert_eq!(civil_from_days((AT / DAY_MS) as i64), (2026, 12, 6));
        assert_eq!(next("* * * * *", AT), AT + MINUTE_MS);
        assert_eq!(next("0 * * * *", AT), AT + 30.0 * MINUTE_MS);
        assert_eq!(next("30 4 * * *", AT), AT + DAY_MS);
        // 2026-12-06 is a Sunday: the next Monday 00:00 is the 7th.
        assert_eq!(next("0 0 * * 1", AT), AT - 270.0 * MINUTE_MS + DAY_MS);
        assert_eq!(next("0 0 * * 7", AT), next("0 0 * * 0", AT));
        // The first of January 2027.
        assert_eq!(next("0 0 1 1 *", AT), 1_798_761_600_000.0);
        assert!(CronSchedule::parse("0 0 30 2 *").is_ok_and(|s| s.next(AT, None).is_none()));
    }

    #[test]
    fn malformed_expressions_are_refused_with_the_field_named() {
        for spec in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
        ] {
            assert!(CronSchedule::parse(spec).is_err(), "{spec:?}");
        }
        let error = CronSchedule::parse("* 25 * * *")
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("hour")));
    }

    #[test]
    fn intervals_follow_their_previous_run_and_skip_what_was_missed() {
        let every = CronSchedule::interval(Duration::from_secs(60));
        assert_eq!(every.next(AT, None), Some(AT + MINUTE_MS));
        assert_eq!(every.next(AT, Some(AT - 1.0)), Some(AT + MINUTE_MS - 1.0));
        assert_eq!(
            every.next(AT, Some(AT - 10.0 * MINUTE_MS)),
            Some(AT + MINUTE_MS)
        );
    }
}

//! The runtime's log: text for people, or JSON lines `{"level","msg","time"}` as containerd's
//! shim reads them (it reports the last `error` line when a command fails).
//!
//! A minimal `tracing` subscriber: the runtime has no spans worth keeping and must start in a
//! millisecond, so the full tracing-subscriber stack is not worth its weight here.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::cli::LogFormat;

pub struct Logger {
    out: Mutex<Box<dyn std::io::Write + Send>>,
    format: LogFormat,
    max: Level,
}

impl Logger {
    /// Logs to `path` (appending), or to stderr; debug lines only with `debug`.
    pub fn install(path: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<()> {
        let out: Box<dyn std::io::Write + Send> = match path {
            Some(p) => Box::new(open_log(p)?),
            None => Box::new(std::io::stderr()),
        };
        let logger = Logger {
            out: Mutex::new(out),
            format,
            max: if debug { Level::DEBUG } else { Level::WARN },
        };
        // A second install (never done) would keep the first logger: nothing to report.
        let _ = tracing::subscriber::set_global_default(logger);
        Ok(())
    }
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct Message {
    msg: String,
    fields: String,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }
}

impl Subscriber for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut m = Message {
            msg: String::new(),
            fields: String::new(),
        };
        event.record(&mut m);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let line = match self.format {
            LogFormat::Json => {
                let obj = serde_json::json!({
                    "level": level,
                    "msg": format!("{}{}", m.msg, m.fields),
                    "time": rfc3339_now(),
                });
                format!("{obj}\n")
            }
            LogFormat::Text => format!("{} {level}: {}{}\n", rfc3339_now(), m.msg, m.fields),
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The time now as RFC 3339 in UTC with nanoseconds (`2026-11-29T17:09:42.123456789Z`).
pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339() {
        let t = UNIX_EPOCH + Duration::new(1_795_972_182, 5);
        assert_eq!(rfc3339(t), "2026-11-29T17:09:42.000000005Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339(leap)[..10], "2000-02-29");
    }
}

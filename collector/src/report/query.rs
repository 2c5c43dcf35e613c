//! The question a report answers, parsed from `?month=&service=&at=` (API) or the `sla`
//! subcommand's flags (CLI); a refusal names the field (`month`, `at`).

use jiff::Timestamp;

use crate::reject::Rejection;
use crate::sla::Month;

/// Which month, of which service (all when `None`), as of which instant (now when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthQuery {
    pub month: Month,
    pub service: Option<String>,
    pub at: Option<Timestamp>,
}

impl MonthQuery {
    /// `month` is `YYYY-MM`; `at` an RFC 3339 instant.
    pub fn parse(
        month: &str,
        service: Option<&str>,
        at: Option<&str>,
    ) -> Result<MonthQuery, Rejection> {
        Ok(MonthQuery {
            month: parse_month(month)?,
            service: service.map(str::to_owned),
            at: at.map(parse_at).transpose()?,
        })
    }
}

/// `YYYY-MM` → month.
pub fn parse_month(s: &str) -> Result<Month, Rejection> {
    let bad =
        || Rejection::new(400, format!("month {s:?} is not YYYY-MM, e.g. 2026-10")).field("month");
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let (y, m) = (
        y.parse::<i16>().map_err(|_| bad())?,
        m.parse::<i8>().map_err(|_| bad())?,
    );
    Month::new(y, m).map_err(|_| bad())
}

fn parse_at(s: &str) -> Result<Timestamp, Rejection> {
    s.parse::<Timestamp>().map_err(|e| {
        Rejection::new(
            400,
            format!("at={s:?} is not an RFC 3339 instant like 2026-10-31T23:00:00Z: {e}"),
        )
        .field("at")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_month_and_instant_name_their_field() {
        for m in ["2026-13", "2026-9", "26-09", "2026/09", ""] {
            let r = MonthQuery::parse(m, None, None).expect_err(m);
            assert_eq!((r.status, r.field.as_deref()), (400, Some("month")), "{m}");
        }
        let r = MonthQuery::parse("2026-09", None, Some("tomorrow")).expect_err("at");
        assert_eq!((r.status, r.field.as_deref()), (400, Some("at")));
        let q =
            MonthQuery::parse("2026-09", Some("web"), Some("2026-10-01T00:00:00Z")).expect("valid");
        assert_eq!(q.month, Month::new(2026, 9).expect("month"));
        assert_eq!(q.service.as_deref(), Some("web"));
        assert_eq!(q.at, Some("2026-10-01T00:00:00Z".parse().expect("instant")));
    }
}

//! The current time, at the precision Postgres stores (microseconds), so a
//! timestamp sent in a message equals the same timestamp read back later.

use time::OffsetDateTime;

pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_has_no_sub_microsecond_part() {
        assert_eq!(super::now().nanosecond() % 1000, 0);
    }
}

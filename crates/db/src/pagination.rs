//! [`Query::paginate`]: one page of a query, as Convex's `paginate` reads it.
//!
//! A page starts after its `cursor` (the beginning when there is none) and ends either after
//! `num_items` documents or, when it has an `end_cursor`, exactly at that cursor whatever the
//! number of documents up to it. The second form is what keeps a live paginated list whole: a
//! subscription re-runs each page up to the end its first run reached, so a document inserted
//! inside a page makes that page longer, one deleted makes it shorter, and the next page still
//! starts where this one ends — nothing is shown twice and nothing falls between two pages.
//!
//! `maximum_rows_read` and `maximum_bytes_read` stop a page without an end cursor early; it is
//! then `SplitRequired`. A page that read more than three quarters of a limit (its own or the
//! transaction's) or holds more than 6,144 documents is `SplitRecommended`. A page of more than
//! two documents carries a `split_cursor` near its middle, so that a client can replace it with
//! two pages `(cursor, split_cursor]` and `(split_cursor, continue_cursor]`.

use keel_values::{PageStatus, PaginationOptions, PaginationResult};

use crate::cursor::{Position, decode_cursor, encode_cursor};
use crate::query::{ScanLimits, after, run, up_to};
use crate::transaction::{MAX_BYTES_READ, MAX_ROWS_READ};
use crate::{DbError, Document, Query};

/// Pages holding more documents than this are `SplitRecommended`: three quarters of the
/// longest array a function may return (8,192), as in Convex.
const SOFT_MAX_PAGE_LEN: usize = 8192 * 3 / 4;

/// Three quarters of a read limit: past it, a page had better be split before it hits it.
fn soft_limit(given: Option<usize>, hard: usize) -> usize {
    given.unwrap_or(hard).min(hard) * 3 / 4
}

impl Query<'_> {
    /// One page of the query: see the [module docs](self). A cursor only works with the query
    /// that made it (same table, index, range and order); any other, and a string that is no
    /// cursor, gives [`DbError::InvalidCursor`]. `num_items` 0 gives
    /// [`DbError::NoDocumentsForPagination`], a read limit of 0
    /// [`DbError::InvalidPaginationLimit`].
    ///
    /// ```ignore
    /// let first = tx.query("posts").order(Order::Desc).paginate(PaginationOptions::first(10)).await?;
    /// let next = tx.query("posts").order(Order::Desc)
    ///     .paginate(PaginationOptions::after(first.continue_cursor, 10)).await?;
    /// ```
    pub async fn paginate(
        self,
        options: PaginationOptions,
    ) -> Result<PaginationResult<Document>, DbError> {
        if options.num_items == 0 {
            return Err(DbError::NoDocumentsForPagination);
        }
        if options.maximum_rows_read == Some(0) || options.maximum_bytes_read == Some(0) {
            return Err(DbError::InvalidPaginationLimit);
        }
        let (plan, tx, order) = self.plan().await?;
        let fingerprint = plan.fingerprint(order);
        let decode = |cursor: Option<&str>| {
            cursor
                .map(|cursor| decode_cursor(&fingerprint, cursor))
                .transpose()
        };
        let start = decode(options.cursor.as_deref())?;
        let end = decode(options.end_cursor.as_deref())?;
        let mut interval = match &start {
            Some(position) => after(&plan.interval, position, order),
            None => plan.interval.clone(),
        };
        let limits = match &end {
            // Up to the end cursor, whatever it takes: a page that stopped short would leave a
            // gap before the next one.
            Some(end) => {
                interval = up_to(&interval, end, order);
                ScanLimits::items(usize::MAX)
            }
            None => ScanLimits {
                items: options.num_items,
                rows: options.maximum_rows_read,
                bytes: options.maximum_bytes_read,
            },
        };
        let scan = run(tx, &plan, interval, order, &limits).await?;
        let position = match (end, scan.exhausted, scan.rows.last()) {
            (Some(end), _, _) => end,
            (None, true, _) => Position::End,
            (None, false, Some((key, _))) => Position::After(key.clone()),
            // Not reached: a scan short of its end returns at least one row.
            (None, false, None) => start.unwrap_or(Position::After(Vec::new())),
        };
        let page_status = if scan.limit_hit {
            Some(PageStatus::SplitRequired)
        } else if scan.read.0 > soft_limit(options.maximum_rows_read, MAX_ROWS_READ)
            || scan.read.1 > soft_limit(options.maximum_bytes_read, MAX_BYTES_READ)
            || scan.rows.len() > SOFT_MAX_PAGE_LEN
        {
            Some(PageStatus::SplitRecommended)
        } else {
            None
        };
        let split_cursor = (scan.rows.len() > 2).then(|| {
            let (key, _) = &scan.rows[scan.rows.len() / 2];
            encode_cursor(&fingerprint, &Position::After(key.clone()))
        });
        Ok(PaginationResult {
            page: scan
                .rows
                .into_iter()
                .map(|(_, document)| document)
                .collect(),
            is_done: position == Position::End,
            continue_cursor: encode_cursor(&fingerprint, &position),
            split_cursor,
            page_status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limits_are_three_quarters_of_the_smaller_limit() {
        assert_eq!(soft_limit(None, 32_000), 24_000);
        assert_eq!(soft_limit(Some(100), 32_000), 75);
        assert_eq!(soft_limit(Some(1_000_000), 32_000), 24_000);
    }
}

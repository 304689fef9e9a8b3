//! Queries: index ranges, order, and the terminal methods (take, first, unique, collect, paginate).

/// The order of a query's results along its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// Ascending index order (the default).
    #[default]
    Asc,
    /// Descending index order.
    Desc,
}

//! Small-cell suppression (privacy rule 4): the one place that decides which counts in a table of
//! figures may be published. Pages, CSV files and APIs all show a table through [`suppress`], so
//! none can publish a small count or let one be worked out.
//!
//! - **Primary**: every count under [`MIN_CELL`] is shown as 「10未満」 (zero too: "none here" is
//!   itself a small fact about a place).
//! - **Complementary**: a table is published with its row and column totals and a grand total.
//!   Each row with its total, and each column with its total, is one equation (the cells add up
//!   to the total). An equation with exactly one hidden value gives that value away by
//!   subtraction, so another value in it is hidden too — the smallest published cell, else its
//!   total — and so on until no equation has exactly one hidden value. The totals row and column
//!   are equations as well (row totals add up to the grand total).
//!
//! - **Across equations**: with rows and columns as nodes and hidden values as edges, the
//!   equations fix a hidden value exactly when its edge is a bridge (on no cycle: the values
//!   that satisfy every equation differ from one another by alternating sums around cycles). So
//!   for each bridge one more published value is hidden, one whose row lies on one side of the
//!   bridge and whose column on the other, which puts the bridge on a cycle. No hidden value can
//!   then be worked out from the published ones by any combination of rows and columns.

/// The smallest count shown as itself.
pub const MIN_CELL: u64 = 10;

/// A published cell: the count, or hidden.
///
/// In JSON a shown count is a number and a hidden one the text 「10未満」, as on pages and in CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Shown(u64),
    Suppressed,
}

impl serde::Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Shown(n) => s.serialize_u64(*n),
            Self::Suppressed => s.serialize_str(&self.csv()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Cell {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Shown(u64),
            Hidden(String),
        }
        match Wire::deserialize(d)? {
            Wire::Shown(n) if n >= MIN_CELL => Ok(Self::Shown(n)),
            Wire::Shown(n) => {
                Err(serde::de::Error::custom(format!("a published count is never under {MIN_CELL}: {n}")))
            }
            Wire::Hidden(t) if t == Self::Suppressed.csv() => Ok(Self::Suppressed),
            Wire::Hidden(t) => Err(serde::de::Error::custom(format!("not a published count: {t}"))),
        }
    }
}

impl Cell {
    /// As people read it: 「1,234」 or 「10未満」.
    pub fn label_ja(self) -> String {
        match self {
            Self::Shown(n) => with_commas(n),
            Self::Suppressed => format!("{MIN_CELL}未満"),
        }
    }

    /// For CSV: the plain number, or 「10未満」.
    pub fn csv(self) -> String {
        match self {
            Self::Shown(n) => n.to_string(),
            Self::Suppressed => format!("{MIN_CELL}未満"),
        }
    }

    pub fn value(self) -> Option<u64> {
        match self {
            Self::Shown(n) => Some(n),
            Self::Suppressed => None,
        }
    }
}

fn with_commas(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table as published: its cells, the total of each row and column, and the grand total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub cells: Vec<Vec<Cell>>,
    pub row_totals: Vec<Cell>,
    pub column_totals: Vec<Cell>,
    pub total: Cell,
}

/// The table `counts` (rows of equal length) with its totals, suppressed as the module says.
pub fn suppress(counts: &[Vec<u64>]) -> Published {
    suppress_within(counts, None)
}

/// A table whose totals row was already published by a larger table: a prefecture's
/// municipalities under that prefecture's row of the table by prefecture. `parent` is that row as
/// published (its cells, then its total). A total the parent shows is known to everyone, so it is
/// never counted on to hide anything; a total the parent hides stays hidden, and the cells under
/// it are hidden so that it cannot be worked out from them.
pub fn suppress_within(counts: &[Vec<u64>], parent: Option<(&[Cell], Cell)>) -> Published {
    // One row under a parent is the parent's row itself: published exactly as the parent did
    // (with two rows or more, every column has a cell left to hide beside any other).
    if let (Some((cells, total)), [_]) = (parent, counts) {
        return Published {
            cells: vec![cells.to_vec()],
            row_totals: vec![total],
            column_totals: cells.to_vec(),
            total,
        };
    }
    let rows = counts.len();
    let columns = counts.first().map_or(0, Vec::len);
    assert!(counts.iter().all(|r| r.len() == columns), "a table's rows have the same length");
    // The full grid: cells, then each row's total in the last column, then the totals row.
    let mut grid: Vec<Vec<u64>> = counts
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.push(r.iter().sum());
            r
        })
        .collect();
    let mut totals_row: Vec<u64> = (0..columns).map(|c| counts.iter().map(|r| r[c]).sum()).collect();
    totals_row.push(totals_row.iter().sum());
    grid.push(totals_row);
    let mut hidden: Vec<Vec<bool>> = grid.iter().map(|r| r.iter().map(|n| *n < MIN_CELL).collect()).collect();
    // Positions whose state is decided already: the totals row, when a parent published it.
    let fixed = |r: usize, _c: usize| parent.is_some() && r == rows;
    if let Some((cells, total)) = parent {
        assert_eq!(cells.len(), columns, "the parent row has one cell per column");
        for (c, cell) in cells.iter().chain([&total]).enumerate() {
            hidden[rows][c] = *cell == Cell::Suppressed;
        }
    }

    // Equations: each row (cells and its total; the totals row too), each column (cells and its
    // total; the row-totals column too). Positions as (row, column) in the grid.
    let mut equations: Vec<Vec<(usize, usize)>> = Vec::new();
    for r in 0..=rows {
        equations.push((0..=columns).map(|c| (r, c)).collect());
    }
    for c in 0..=columns {
        equations.push((0..=rows).map(|r| (r, c)).collect());
    }
    // Cells before totals, then the smallest: what hiding costs readers least.
    let cost = |(r, c): (usize, usize)| (r == rows || c == columns, grid[r][c]);
    loop {
        let lone = equations.iter().find(|eq| eq.iter().filter(|(r, c)| hidden[*r][*c]).count() == 1);
        if let Some(eq) = lone {
            let next = eq
                .iter()
                .copied()
                .filter(|(r, c)| !hidden[*r][*c] && !fixed(*r, *c))
                .min_by_key(|p| cost(*p));
            match next {
                Some((r, c)) => hidden[r][c] = true,
                None => break, // every equation has a total: cannot happen, but never loop
            }
            continue;
        }
        let Some((side_rows, side_columns)) = bridge(&hidden) else { break };
        // A published value joining the bridge's two sides puts it on a cycle.
        let next = (0..=rows)
            .flat_map(|r| (0..=columns).map(move |c| (r, c)))
            .filter(|(r, c)| !hidden[*r][*c] && !fixed(*r, *c) && side_rows[*r] != side_columns[*c])
            .min_by_key(|p| cost(*p));
        match next {
            Some((r, c)) => hidden[r][c] = true,
            None => break, // the whole table is hidden: nothing is left to learn
        }
    }
    let cell = |r: usize, c: usize| if hidden[r][c] { Cell::Suppressed } else { Cell::Shown(grid[r][c]) };
    Published {
        cells: (0..rows).map(|r| (0..columns).map(|c| cell(r, c)).collect()).collect(),
        row_totals: (0..rows).map(|r| cell(r, columns)).collect(),
        column_totals: (0..columns).map(|c| cell(rows, c)).collect(),
        total: cell(rows, columns),
    }
}

/// A hidden value that the equations fix: an edge of the graph of hidden values (row and column
/// nodes) that lies on no cycle. Returns, for such a bridge, which side of it each row and each
/// column is on (`true`: the row's side); `None` when there is none.
fn bridge(hidden: &[Vec<bool>]) -> Option<(Vec<bool>, Vec<bool>)> {
    let rows = hidden.len();
    let columns = hidden.first().map_or(0, Vec::len);
    let edges: Vec<(usize, usize)> =
        (0..rows).flat_map(|r| (0..columns).map(move |c| (r, c))).filter(|(r, c)| hidden[*r][*c]).collect();
    for &(br, bc) in &edges {
        // Nodes reachable from the bridge's row without crossing it.
        let mut seen_rows = vec![false; rows];
        let mut seen_columns = vec![false; columns];
        seen_rows[br] = true;
        let mut stack = vec![(true, br)];
        while let Some((is_row, i)) = stack.pop() {
            for &(r, c) in &edges {
                if (r, c) == (br, bc) {
                    continue;
                }
                if is_row && r == i && !seen_columns[c] {
                    seen_columns[c] = true;
                    stack.push((false, c));
                } else if !is_row && c == i && !seen_rows[r] {
                    seen_rows[r] = true;
                    stack.push((true, r));
                }
            }
        }
        if !seen_columns[bc] {
            return Some((seen_rows, seen_columns));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every equation of the published table (a row or column with its total) has zero or at
    /// least two hidden values: none can be worked out by subtraction from what is shown.
    fn nothing_recoverable(p: &Published) -> Result<(), String> {
        let columns = p.column_totals.len();
        let mut grid: Vec<Vec<Cell>> =
            p.cells.iter().zip(&p.row_totals).map(|(r, t)| r.iter().copied().chain([*t]).collect()).collect();
        grid.push(p.column_totals.iter().copied().chain([p.total]).collect());
        for (r, row) in grid.iter().enumerate() {
            let n = row.iter().filter(|c| **c == Cell::Suppressed).count();
            if n == 1 {
                return Err(format!("row {r} has one hidden value"));
            }
        }
        for c in 0..=columns {
            let n = grid.iter().filter(|row| row[c] == Cell::Suppressed).count();
            if n == 1 {
                return Err(format!("column {c} has one hidden value"));
            }
        }
        Ok(())
    }

    #[test]
    fn a_small_count_and_the_one_that_would_give_it_away_are_hidden() {
        // 3 in a row whose total is shown: the row's smallest other cell goes too, and so do the
        // cells the columns then need.
        let p = suppress(&[vec![3, 40, 50], vec![20, 30, 60]]);
        assert_eq!(p.cells[0][0], Cell::Suppressed);
        assert_eq!(p.cells[0][1], Cell::Suppressed, "the smallest other cell of its row");
        assert_eq!(p.row_totals[0], Cell::Shown(93));
        assert!(nothing_recoverable(&p).is_ok());
        assert_eq!(p.cells[0][2], Cell::Shown(50));
        assert_eq!(Cell::Suppressed.label_ja(), "10未満");
        assert_eq!(Cell::Shown(1234567).label_ja(), "1,234,567");
        assert_eq!(Cell::Shown(10).csv(), "10");
    }

    #[test]
    fn a_table_of_large_counts_is_published_whole() {
        let p = suppress(&[vec![10, 11], vec![12, 13]]);
        assert!(p.cells.iter().flatten().all(|c| matches!(c, Cell::Shown(_))));
        assert_eq!(p.total, Cell::Shown(46));
    }

    #[test]
    fn one_column_hides_the_total_beside_a_small_cell() {
        let p = suppress(&[vec![4], vec![25], vec![30]]);
        assert_eq!(p.cells[0][0], Cell::Suppressed);
        assert_eq!(p.row_totals[0], Cell::Suppressed, "the row total equals the cell");
        assert!(nothing_recoverable(&p).is_ok());
    }

    #[test]
    fn a_hidden_value_joining_two_blocks_is_found_and_put_on_a_cycle() {
        // Two 2×2 blocks of hidden values joined by one more: every row and column has two or
        // more hidden values, yet the joining one follows from the equations together.
        let mut hidden = vec![vec![false; 4]; 4];
        for (r, c) in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (1, 2)] {
            hidden[r][c] = true;
        }
        let (rows, columns) = bridge(&hidden).expect("the joining value is a bridge");
        assert!(rows[0] && rows[1] && !rows[2] && !rows[3], "{rows:?}");
        assert!(columns[0] && columns[1] && !columns[2] && !columns[3], "{columns:?}");
        hidden[2][0] = true; // a second join: both are now on a cycle
        assert!(bridge(&hidden).is_none());
    }

    /// Which values of a published table are hidden: its cells with their row totals, then the
    /// column totals and the grand total as one more row (the shape `bridge` reads).
    fn hidden_of(p: &Published) -> Vec<Vec<bool>> {
        let mut hidden: Vec<Vec<bool>> = p
            .cells
            .iter()
            .zip(&p.row_totals)
            .map(|(r, t)| r.iter().chain([t]).map(|c| *c == Cell::Suppressed).collect())
            .collect();
        hidden.push(p.column_totals.iter().chain([&p.total]).map(|c| *c == Cell::Suppressed).collect());
        hidden
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn no_hidden_cell_can_be_worked_out_from_its_row_or_column(
            rows in 1usize..7,
            columns in 1usize..7,
            seed in proptest::collection::vec(0u64..60, 49),
        ) {
            let counts: Vec<Vec<u64>> =
                (0..rows).map(|r| (0..columns).map(|c| seed[r * 7 + c]).collect()).collect();
            let p = suppress(&counts);
            prop_assert!(nothing_recoverable(&p).is_ok(), "{:?} -> {:?}", counts, p);
            // Nor from any combination of rows and columns: no hidden value is a bridge.
            prop_assert!(bridge(&hidden_of(&p)).is_none(), "{:?} -> {:?}", counts, p);
            // Every small count is hidden; every shown value is the true one.
            for (r, row) in counts.iter().enumerate() {
                for (c, n) in row.iter().enumerate() {
                    match p.cells[r][c] {
                        Cell::Shown(v) => { prop_assert_eq!(v, *n); prop_assert!(v >= MIN_CELL); }
                        Cell::Suppressed => {}
                    }
                }
            }
            for t in p.row_totals.iter().chain(&p.column_totals).chain([&p.total]) {
                if let Cell::Shown(v) = t {
                    prop_assert!(*v >= MIN_CELL);
                }
            }
        }

        /// Municipalities under their prefecture's published row: the totals are exactly what the
        /// parent published, and nothing the parent hides follows from the cells shown under it.
        #[test]
        fn a_table_under_a_published_row_keeps_its_hidden_totals_hidden(
            rows in 1usize..7,
            columns in 1usize..7,
            seed in proptest::collection::vec(0u64..60, 49),
            parent_hides in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let counts: Vec<Vec<u64>> =
                (0..rows).map(|r| (0..columns).map(|c| seed[r * 7 + c]).collect()).collect();
            // The parent row: the true column totals, hidden where the parent chose (small ones
            // always), and never with exactly one hidden value (the parent table is safe).
            let sums: Vec<u64> = (0..columns).map(|c| counts.iter().map(|r| r[c]).sum()).collect();
            let total: u64 = sums.iter().sum();
            let mut hide: Vec<bool> =
                sums.iter().chain([&total]).enumerate().map(|(i, v)| *v < MIN_CELL || parent_hides[i]).collect();
            if hide.iter().filter(|h| **h).count() == 1 {
                hide.iter_mut().for_each(|h| *h = true);
            }
            let cell = |v: u64, h: bool| if h { Cell::Suppressed } else { Cell::Shown(v) };
            let parent_cells: Vec<Cell> = sums.iter().zip(&hide).map(|(v, h)| cell(*v, *h)).collect();
            let parent_total = cell(total, hide[columns]);
            let p = suppress_within(&counts, Some((&parent_cells, parent_total)));
            prop_assert_eq!(&p.column_totals, &parent_cells);
            prop_assert_eq!(p.total, parent_total);
            prop_assert!(nothing_recoverable(&p).is_ok(), "{:?} -> {:?}", counts, p);
            prop_assert!(bridge(&hidden_of(&p)).is_none(), "{:?} -> {:?}", counts, p);
        }
    }
}

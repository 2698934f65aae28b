//! Matching postings to nurses by distance (issue #8): which open postings lie within the
//! distance each latent nurse chose from her home, across prefecture borders (a nurse in Kawasaki
//! sees Tokyo postings; prefectures play no part here).
//!
//! Distance is great-circle on a sphere of radius 6,371,008.8 m (Haversine), the definition the
//! comparison benchmarks use. Comparisons do not call trigonometry per pair: every place also
//! carries its unit vector, and "within d metres" is "chord to the centre at most 2 sin(d / 2R)",
//! the same test written with a square root fewer. The distance she reads (km on her page) comes
//! from `geo`'s Haversine.
//!
//! Postings sit in an R-tree (`rstar`) by longitude and latitude. A search descends from the root
//! and, at each node, does one of three things with the node's bounding rectangle:
//! - outside the circle's bounding box: skip it;
//! - wholly inside the circle (its four corners are: on a sphere the farthest point of a
//!   longitude/latitude rectangle from any centre is one of its corners, because distance grows
//!   monotonically along a parallel away from the centre's meridian and has one minimum along a
//!   meridian): take every posting under it without testing them one by one;
//! - otherwise: look at its children.
//!
//! Counting every pair (the benchmark) and listing a nurse's nearest postings (the server) are the
//! same descent with a different [`Visitor`].

use geo::{Distance, Haversine, Point};
use rstar::{AABB, ParentNode, RTree, RTreeNode, RTreeObject};

/// Mean Earth radius, metres (the sphere PostGIS and the benchmarks use).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A point on the sphere: degrees as the shared data and postings give them, and its unit vector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Place {
    lat: f64,
    lon: f64,
    v: [f64; 3],
}

impl Place {
    pub fn new(lat: f64, lon: f64) -> Self {
        let (la, lo) = (lat.to_radians(), lon.to_radians());
        let c = la.cos();
        Self { lat, lon, v: [c * lo.cos(), c * lo.sin(), la.sin()] }
    }

    /// Her home point: the municipality's point from the shared data.
    pub fn of_municipality(m: &ncf_shared::Municipality) -> Self {
        Self::new(m.lat, m.lng)
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }

    pub fn lon(&self) -> f64 {
        self.lon
    }

    /// Great-circle distance in metres (Haversine on the mean sphere).
    pub fn distance_m(&self, other: &Place) -> f64 {
        Haversine.distance(Point::new(self.lon, self.lat), Point::new(other.lon, other.lat))
    }

    fn chord2(&self, v: &[f64; 3]) -> f64 {
        let (dx, dy, dz) = (self.v[0] - v[0], self.v[1] - v[1], self.v[2] - v[2]);
        dx * dx + dy * dy + dz * dz
    }
}

/// The circle a search covers: a centre and a great-circle radius, with what the descent tests
/// against precomputed.
#[derive(Clone, Copy, Debug)]
pub struct Reach {
    center: Place,
    /// Squared chord of the radius on the unit sphere.
    chord2: f64,
    /// A little less than `chord2`, for "a whole rectangle is inside": a posting inside such a
    /// rectangle then also passes the one-by-one test despite rounding, so counting and listing
    /// never disagree at the edge.
    inner2: f64,
    /// The circle's bounding box in degrees: (south, west) and (north, east).
    min: [f64; 2],
    max: [f64; 2],
}

impl Reach {
    pub fn new(center: Place, radius_m: f64) -> Self {
        let angle = (radius_m / EARTH_RADIUS_M).max(0.0);
        let chord = 2.0 * (angle / 2.0).sin();
        let chord2 = chord * chord;
        let dlat = angle.to_degrees();
        // The widest longitude a cap reaches is asin(sin a / cos φ); near a pole the cap contains
        // every longitude.
        let cos_lat = center.lat.to_radians().cos();
        let dlon = if angle.sin() < cos_lat { (angle.sin() / cos_lat).asin().to_degrees() } else { 180.0 };
        Self {
            center,
            chord2,
            inner2: chord2 * (1.0 - 1e-12),
            min: [center.lon - dlon, center.lat - dlat],
            max: [center.lon + dlon, center.lat + dlat],
        }
    }

    fn reaches(&self, place: &Place) -> bool {
        self.center.chord2(&place.v) <= self.chord2
    }

    fn touches(&self, env: &AABB<[f64; 2]>) -> bool {
        let (lo, hi) = (env.lower(), env.upper());
        lo[0] <= self.max[0] && hi[0] >= self.min[0] && lo[1] <= self.max[1] && hi[1] >= self.min[1]
    }

    fn holds(&self, corners: &[[f64; 3]; 4]) -> bool {
        corners.iter().all(|v| self.center.chord2(v) <= self.inner2)
    }
}

/// One item in the index (a posting, by whatever the caller identifies it with) and its place.
#[derive(Clone, Copy, Debug)]
pub struct Entry<T> {
    pub item: T,
    pub place: Place,
}

impl<T> RTreeObject for Entry<T> {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_point([self.place.lon, self.place.lat])
    }
}

/// What a search does with what it finds.
pub trait Visitor<T> {
    /// An item within reach.
    fn one(&mut self, entry: &Entry<T>);
    /// The `items` items under a node that lies wholly within reach; by default, each of them.
    fn whole(&mut self, node: &ParentNode<Entry<T>>, _items: u64) {
        fn each<T>(node: &ParentNode<Entry<T>>, visitor: &mut (impl Visitor<T> + ?Sized)) {
            for child in node.children() {
                match child {
                    RTreeNode::Leaf(entry) => visitor.one(entry),
                    RTreeNode::Parent(parent) => each(parent, visitor),
                }
            }
        }
        each(node, self);
    }
}

/// Postings by place.
pub struct Index<T> {
    tree: RTree<Entry<T>>,
    /// What the descent needs about each inner node of `tree`, in the order a depth-first walk
    /// meets them, computed once: `rstar` nodes cannot carry it, and computing the corners' unit
    /// vectors (four sines and cosines each) at every visit cost more than the rest of the search.
    nodes: Vec<NodeInfo>,
}

struct NodeInfo {
    /// Unit vectors of the node's rectangle's corners.
    corners: [[f64; 3]; 4],
    /// Inner nodes in its subtree, itself included: how far to skip past it.
    span: u32,
    /// Items under it.
    items: u64,
}

impl<T> Index<T> {
    pub fn new(items: impl IntoIterator<Item = (T, Place)>) -> Self {
        let tree = RTree::bulk_load(items.into_iter().map(|(item, place)| Entry { item, place }).collect());
        let mut nodes = Vec::new();
        fn walk<T>(node: &ParentNode<Entry<T>>, nodes: &mut Vec<NodeInfo>) -> (u32, u64) {
            let at = nodes.len();
            let env = node.envelope();
            let (lo, hi) = (env.lower(), env.upper());
            let corners = [[lo[1], lo[0]], [lo[1], hi[0]], [hi[1], lo[0]], [hi[1], hi[0]]]
                .map(|[lat, lon]| Place::new(lat, lon).v);
            nodes.push(NodeInfo { corners, span: 1, items: 0 });
            let (mut span, mut items) = (1u32, 0u64);
            for child in node.children() {
                match child {
                    RTreeNode::Leaf(_) => items += 1,
                    RTreeNode::Parent(p) => {
                        let (s, i) = walk(p, nodes);
                        span += s;
                        items += i;
                    }
                }
            }
            nodes[at].span = span;
            nodes[at].items = items;
            (span, items)
        }
        walk(tree.root(), &mut nodes);
        Self { tree, nodes }
    }

    /// Hands `visitor` everything within reach, once each.
    pub fn within(&self, reach: &Reach, visitor: &mut impl Visitor<T>) {
        self.descend(self.tree.root(), 0, reach, visitor);
    }

    /// `at` is the position of `node` in `nodes`; its inner children follow it in order.
    fn descend(&self, node: &ParentNode<Entry<T>>, at: usize, reach: &Reach, visitor: &mut impl Visitor<T>) {
        let mut next = at + 1;
        for child in node.children() {
            match child {
                RTreeNode::Leaf(entry) => {
                    if reach.reaches(&entry.place) {
                        visitor.one(entry);
                    }
                }
                RTreeNode::Parent(parent) => {
                    let info = &self.nodes[next];
                    if reach.touches(&parent.envelope()) {
                        if reach.holds(&info.corners) {
                            visitor.whole(parent, info.items);
                        } else {
                            self.descend(parent, next, reach, visitor);
                        }
                    }
                    next += info.span as usize;
                }
            }
        }
    }

    /// How many items are within reach.
    pub fn count_within(&self, reach: &Reach) -> u64 {
        struct Count(u64);
        impl<T> Visitor<T> for Count {
            fn one(&mut self, _: &Entry<T>) {
                self.0 += 1;
            }
            fn whole(&mut self, _: &ParentNode<Entry<T>>, items: u64) {
                self.0 += items;
            }
        }
        let mut count = Count(0);
        self.within(reach, &mut count);
        count.0
    }

    /// The `limit` nearest items within reach that `wanted` accepts, nearest first, each with its
    /// distance in metres (ties in the order of the items, so a list is stable between runs).
    pub fn nearest_within(&self, reach: &Reach, limit: usize, wanted: impl Fn(&T) -> bool) -> Vec<(T, f64)>
    where
        T: Copy + Ord,
    {
        struct Near<'a, T, F> {
            center: &'a Place,
            wanted: F,
            found: Vec<(f64, T, Place)>,
        }
        impl<T: Copy, F: Fn(&T) -> bool> Visitor<T> for Near<'_, T, F> {
            fn one(&mut self, entry: &Entry<T>) {
                if (self.wanted)(&entry.item) {
                    self.found.push((self.center.chord2(&entry.place.v), entry.item, entry.place));
                }
            }
        }
        let mut near = Near { center: &reach.center, wanted, found: Vec::new() };
        self.within(reach, &mut near);
        let mut found = near.found;
        let order = |a: &(f64, T, Place), b: &(f64, T, Place)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        if found.len() > limit && limit > 0 {
            found.select_nth_unstable_by(limit - 1, order);
        }
        found.truncate(limit);
        found.sort_unstable_by(order);
        found.into_iter().map(|(_, item, place)| (item, reach.center.distance_m(&place))).collect()
    }
}

/// Counts the pairs (reach, item) within reach over all reaches, on `threads` threads.
pub fn count_pairs<T: Sync>(index: &Index<T>, reaches: &[Reach], threads: usize) -> u64 {
    let threads = threads.max(1);
    let chunk = reaches.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = reaches
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|r| index.count_within(r)).sum::<u64>()))
            .collect();
        workers.into_iter().map(|w| w.join().expect("a counting thread panicked")).sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn municipality(code: &str) -> Place {
        Place::of_municipality(ncf_shared::Municipality::by_lgcode(code).expect("known municipality"))
    }

    /// A nurse in 川崎市川崎区 (Kanagawa, 14) and postings in Tokyo (13): 千代田区 about 19 km
    /// away, 八王子市 about 38 km away, across the prefecture border.
    #[test]
    fn a_kawasaki_nurse_reaches_tokyo_postings_within_her_distance() {
        let home = municipality("141313");
        let chiyoda = municipality("131016");
        let hachioji = municipality("132012");
        let near_km = home.distance_m(&chiyoda) / 1000.0;
        let far_km = home.distance_m(&hachioji) / 1000.0;
        assert!((15.0..20.0).contains(&near_km), "{near_km}");
        assert!((35.0..45.0).contains(&far_km), "{far_km}");
        let index = Index::new([(1u32, chiyoda), (2u32, hachioji)]);

        let at_20 = index.nearest_within(&Reach::new(home, 20_000.0), 100, |_| true);
        assert_eq!(at_20.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1]);
        assert!((at_20[0].1 / 1000.0 - near_km).abs() < 1e-9);

        let at_50 = index.nearest_within(&Reach::new(home, 50_000.0), 100, |_| true);
        assert_eq!(at_50.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2], "nearest first");
        assert_eq!(index.count_within(&Reach::new(home, 50_000.0)), 2);
        assert_eq!(index.count_within(&Reach::new(home, 10_000.0)), 0);
    }

    /// A deterministic spread of points around Tokyo Bay, dense enough that whole R-tree nodes
    /// fall inside a circle.
    fn cloud(n: u32) -> Vec<(u32, Place)> {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n).map(|i| (i, Place::new(35.0 + next() * 1.4, 139.0 + next() * 1.6))).collect()
    }

    /// The descent (skipping, taking whole nodes, testing one by one) agrees with testing every
    /// point against the Haversine distance, for counts and for the nearest lists.
    #[test]
    fn the_descent_agrees_with_checking_every_point() {
        let points = cloud(20_000);
        let index = Index::new(points.iter().copied());
        for (i, (_, center)) in cloud(60).iter().enumerate() {
            let radius = [5_000.0, 10_000.0, 20_000.0, 30_000.0, 50_000.0][i % 5];
            let reach = Reach::new(*center, radius);
            let mut by_hand: Vec<(f64, u32)> = points
                .iter()
                .map(|(id, p)| (center.distance_m(p), *id))
                .filter(|(d, _)| *d <= radius)
                .collect();
            // Away from the edge the two tests cannot disagree; exactly at it, rounding may.
            let edge = by_hand.iter().filter(|(d, _)| (d - radius).abs() < 1e-6).count() as u64;
            let counted = index.count_within(&reach);
            assert!(counted.abs_diff(by_hand.len() as u64) <= edge, "{counted} vs {}", by_hand.len());
            assert!(counted > 0);

            by_hand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let listed = index.nearest_within(&reach, 100, |id| id % 3 != 0);
            let expected: Vec<u32> =
                by_hand.iter().map(|(_, id)| *id).filter(|id| id % 3 != 0).take(100).collect();
            assert_eq!(listed.iter().map(|(id, _)| *id).collect::<Vec<_>>(), expected);
            assert!(listed.windows(2).all(|w| w[0].1 <= w[1].1), "nearest first");
        }
    }

    #[test]
    fn counting_in_parallel_counts_the_same() {
        let index = Index::new(cloud(5_000));
        let reaches: Vec<Reach> =
            cloud(301).iter().map(|(i, p)| Reach::new(*p, f64::from(5 + i % 40) * 1000.0)).collect();
        let one: u64 = reaches.iter().map(|r| index.count_within(r)).sum();
        assert_eq!(count_pairs(&index, &reaches, 2), one);
        assert_eq!(count_pairs(&index, &reaches, 7), one);
        assert_eq!(count_pairs(&Index::<u32>::new([]), &reaches, 2), 0);
    }
}

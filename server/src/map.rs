//! Japan by prefecture as SVG path data, drawn once at start-up from `assets/prefectures.topojson`
//! (地球地図日本 by GSI, via dataofjapan/land; credited wherever the map is shown). Pages then
//! only colour the 47 paths: no tiles, scripts or fonts from anywhere.
//!
//! The projection is equirectangular with longitudes shortened by cos 36° (true shape near the
//! middle of Honshu). Okinawa is drawn in a box at the top left, as Japanese maps do, and the
//! far islands (Ogasawara, Minamitorishima, Okinotorishima) are left out: at this size they are
//! dots nobody could point at. Points closer than `MERGE` are merged, and islands that would be
//! specks are left out.

use serde::Deserialize;

/// The map's height in SVG units (its width follows from the projection).
pub const HEIGHT: f64 = 1000.0;

const OKINAWA: u8 = 47;
/// The box Okinawa is moved into (lon, lat of its corners) and by how much.
const OKINAWA_SHIFT: (f64, f64) = (6.5, 13.0);
/// Okinawa's islands west of this longitude (the Daito islands lie east of it, far out).
const OKINAWA_WEST_OF: f64 = 130.0;
/// What the main map shows (lon, lat): everything else is a far island.
const MAIN: ((f64, f64), (f64, f64)) = ((128.6, 27.0), (146.0, 45.6));
const LON_FACTOR: f64 = 0.809; // cos 36°

#[derive(Deserialize)]
struct Topology {
    arcs: Vec<Vec<[i64; 2]>>,
    transform: Transform,
    objects: Objects,
}

#[derive(Deserialize)]
struct Transform {
    scale: [f64; 2],
    translate: [f64; 2],
}

#[derive(Deserialize)]
struct Objects {
    japan: Collection,
}

#[derive(Deserialize)]
struct Collection {
    geometries: Vec<Geometry>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Geometry {
    Polygon { arcs: Vec<Vec<i64>>, properties: Properties },
    MultiPolygon { arcs: Vec<Vec<Vec<i64>>>, properties: Properties },
}

#[derive(Deserialize)]
struct Properties {
    id: u8,
}

/// The 47 prefectures' outlines: (prefecture number, SVG path data), in code order.
#[derive(Debug, Clone)]
pub struct JapanMap {
    pub shapes: Vec<(u8, String)>,
    /// The map's width in SVG units.
    pub width: f64,
    /// The frame around the Okinawa inset, as path data.
    pub inset_frame: String,
}

impl JapanMap {
    /// The map of the bundled file.
    pub fn bundled() -> Self {
        Self::from_topojson(include_str!("../assets/prefectures.topojson"))
            .expect("the bundled prefectures.topojson is valid")
    }

    pub fn from_topojson(text: &str) -> Result<Self, String> {
        let topology: Topology =
            serde_json::from_str(text).map_err(|e| format!("prefectures.topojson: {e}"))?;
        // Decode the delta-encoded, quantized arcs into (lon, lat).
        let arcs: Vec<Vec<(f64, f64)>> = topology
            .arcs
            .iter()
            .map(|arc| {
                let (mut x, mut y) = (0i64, 0i64);
                arc.iter()
                    .map(|[dx, dy]| {
                        x += dx;
                        y += dy;
                        let t = &topology.transform;
                        (x as f64 * t.scale[0] + t.translate[0], y as f64 * t.scale[1] + t.translate[1])
                    })
                    .collect()
            })
            .collect();
        let ring = |indices: &[i64]| -> Vec<(f64, f64)> {
            let mut points = Vec::new();
            for &i in indices {
                let (arc, reversed) =
                    if i < 0 { (&arcs[(!i) as usize], true) } else { (&arcs[i as usize], false) };
                let mut part: Vec<(f64, f64)> = arc.clone();
                if reversed {
                    part.reverse();
                }
                // Consecutive arcs share their joining point.
                let skip = usize::from(!points.is_empty());
                points.extend(part.into_iter().skip(skip));
            }
            points
        };
        let ((min_lon, min_lat), (max_lon, max_lat)) = MAIN;
        let project = |(lon, lat): (f64, f64)| -> (f64, f64) {
            let x = (lon - min_lon) * LON_FACTOR;
            let y = max_lat - lat;
            let scale = HEIGHT / (max_lat - min_lat);
            (x * scale, y * scale)
        };
        let mut shapes: Vec<(u8, String)> = Vec::new();
        for geometry in topology.objects.japan.geometries {
            let (id, polygons) = match geometry {
                Geometry::Polygon { arcs, properties } => (properties.id, vec![arcs]),
                Geometry::MultiPolygon { arcs, properties } => (properties.id, arcs),
            };
            let mut rings: Vec<Vec<(f64, f64)>> = Vec::new();
            for polygon in polygons {
                for indices in polygon {
                    let points = ring(&indices);
                    let points: Vec<(f64, f64)> = if id == OKINAWA {
                        if points.iter().any(|(lon, _)| *lon > OKINAWA_WEST_OF) {
                            continue;
                        }
                        points
                            .into_iter()
                            .map(|(lon, lat)| (lon + OKINAWA_SHIFT.0, lat + OKINAWA_SHIFT.1))
                            .collect()
                    } else {
                        let inside = points.iter().all(|(lon, lat)| {
                            (min_lon..=max_lon).contains(lon) && (min_lat..=max_lat).contains(lat)
                        });
                        if !inside {
                            continue;
                        }
                        points
                    };
                    rings.push(points.into_iter().map(project).collect());
                }
            }
            // Largest rings first, so that the prefecture keeps its main island whatever is merged.
            rings.sort_by_key(|r| std::cmp::Reverse(r.len()));
            let mut d = String::new();
            for (n, points) in rings.iter().enumerate() {
                let simplified = simplify(points);
                // Islands drawn as fewer than 8 points would be specks: the main ring always stays.
                if simplified.len() < 8 && n > 0 {
                    continue;
                }
                // Whole units (a thousandth of the map's height) and steps relative to the point
                // before: the path data is sent with every map page.
                let whole: Vec<(i64, i64)> =
                    simplified.iter().map(|(x, y)| (x.round() as i64, y.round() as i64)).collect();
                let mut last = whole[0];
                d.push_str(&format!("M{} {}", last.0, last.1));
                for &(x, y) in &whole[1..] {
                    if (x, y) != last {
                        d.push_str(&format!("l{} {}", x - last.0, y - last.1));
                        last = (x, y);
                    }
                }
                d.push('z');
            }
            if d.is_empty() {
                return Err(format!("prefecture {id} has no outline inside the map"));
            }
            shapes.push((id, d));
        }
        shapes.sort_by_key(|(id, _)| *id);
        let ids: Vec<u8> = shapes.iter().map(|(id, _)| *id).collect();
        if ids != (1..=47).collect::<Vec<u8>>() {
            return Err(format!("expected the 47 prefectures once each, found {ids:?}"));
        }
        let (x0, y0) = project((129.0, 40.3));
        let (x1, y1) = project((135.4, 36.6));
        let inset_frame = format!("M{x0:.1} {y0:.1}H{x1:.1}V{y1:.1}H{x0:.1}Z");
        let width = project((max_lon, min_lat)).0.ceil();
        Ok(Self { shapes, width, inset_frame })
    }
}

/// Points closer than this (SVG units, a thousandth of the map's height) are merged.
const MERGE: f64 = 1.2;

/// Drops points within `MERGE` of the last one kept (the ring stays closed).
fn simplify(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(points.len() / 4);
    for &p in points {
        match out.last() {
            Some(&(x, y)) if (p.0 - x).abs() < MERGE && (p.1 - y).abs() < MERGE => {}
            _ => out.push(p),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_map_has_every_prefecture_inside_the_frame() {
        let map = JapanMap::bundled();
        assert_eq!(map.shapes.len(), 47);
        for (id, d) in &map.shapes {
            assert!(d.starts_with('M') && d.ends_with('z'), "{id}");
            // Written into pages unescaped: nothing but commands, digits, signs and spaces.
            assert!(d.chars().all(|c| "Mlz0123456789- ".contains(c)), "{id}");
            // Every point, following the relative steps, lies inside the map.
            for ring in d.split('z').filter(|r| !r.is_empty()) {
                let mut at = (0i64, 0i64);
                for (i, step) in ring.split(['M', 'l']).filter(|s| !s.is_empty()).enumerate() {
                    let (x, y) = step.split_once(' ').unwrap();
                    let (x, y): (i64, i64) = (x.parse().unwrap(), y.parse().unwrap());
                    at = if i == 0 { (x, y) } else { (at.0 + x, at.1 + y) };
                    let inside =
                        (0..=map.width as i64 + 1).contains(&at.0) && (0..=HEIGHT as i64 + 1).contains(&at.1);
                    assert!(inside, "prefecture {id}: {at:?} outside the map");
                }
            }
        }
        // Drawn once and small enough to send with every page.
        let bytes: usize = map.shapes.iter().map(|(_, d)| d.len()).sum();
        assert!(bytes < 80_000, "{bytes} bytes of path data");
    }
}

//! Pages kept ready to send gzip-compressed, with the parts that differ per request joined in.
//!
//! The national figures page is some 60 kB of map, chart and table that is the same for every
//! staff member, and a few hundred bytes (her name, the sign-out form's token) that are not.
//! Compressing the whole page on every request would cost more than everything else the request
//! does, so the shared parts are compressed once, when they are rendered, and each answer is
//! assembled from them:
//!
//! - a shared part is raw deflate data ended by a sync flush, which leaves it on a byte boundary
//!   and not final, so parts compressed at different times can follow each other in one stream;
//! - a per-request part goes in as stored (uncompressed) deflate blocks, which need no compressor;
//! - an empty final block closes the stream, and the gzip trailer's CRC-32 is combined from the
//!   parts' own CRCs (RFC 1951 §3.2.4 and 3.2.6, RFC 1952).
//!
//! A browser that does not ask for gzip gets the same parts uncompressed.

use actix_web::http::StatusCode;
use actix_web::http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use actix_web::{HttpRequest, HttpResponse};
use flate2::{Compress, Compression, FlushCompress};

/// A shared part of a page: its text, and the same text as raw deflate blocks ending on a byte
/// boundary, with its CRC-32.
pub struct Deflated {
    plain: String,
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl Deflated {
    pub fn new(plain: String) -> Result<Self, String> {
        let input = plain.as_bytes();
        let mut compressor = Compress::new(Compression::default(), false);
        let mut deflated = Vec::with_capacity(input.len() / 3 + 64);
        loop {
            if deflated.capacity() - deflated.len() < 1024 {
                deflated.reserve(input.len() / 4 + 1024);
            }
            let consumed = compressor.total_in() as usize;
            compressor
                .compress_vec(&input[consumed..], &mut deflated, FlushCompress::Sync)
                .map_err(|e| format!("compressing a page: {e}"))?;
            // The flush is complete once all input is in and the output was not filled up.
            if compressor.total_in() as usize == input.len() && deflated.len() < deflated.capacity() {
                break;
            }
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(input);
        Ok(Self { plain, deflated, crc })
    }

    pub fn text(&self) -> &str {
        &self.plain
    }
}

/// One part of an answer: shared and kept compressed, or made for this request.
pub enum Part<'a> {
    Kept(&'a Deflated),
    Fresh(&'a str),
}

const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// A final, empty block with fixed Huffman codes: BFINAL 1, BTYPE 01, end-of-block code 0.
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

/// The parts as one gzip member.
pub fn gzip(parts: &[Part<'_>]) -> Vec<u8> {
    let size: usize = parts
        .iter()
        .map(|p| match p {
            Part::Kept(d) => d.deflated.len(),
            Part::Fresh(s) => s.len() + 5 * (s.len() / 65_535 + 1),
        })
        .sum();
    let mut out = Vec::with_capacity(GZIP_HEADER.len() + size + FINAL_EMPTY_BLOCK.len() + 8);
    out.extend_from_slice(&GZIP_HEADER);
    let mut crc = crc32fast::Hasher::new();
    let mut length: u64 = 0;
    for part in parts {
        match part {
            Part::Kept(d) => {
                out.extend_from_slice(&d.deflated);
                crc.combine(&d.crc);
                length += d.plain.len() as u64;
            }
            Part::Fresh(s) => {
                for chunk in s.as_bytes().chunks(65_535) {
                    // A stored block: BFINAL 0 and BTYPE 00 padded to the byte, then LEN and NLEN.
                    let len = chunk.len() as u16;
                    out.push(0);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&(!len).to_le_bytes());
                    out.extend_from_slice(chunk);
                }
                crc.update(s.as_bytes());
                length += s.len() as u64;
            }
        }
    }
    out.extend_from_slice(&FINAL_EMPTY_BLOCK);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&(length as u32).to_le_bytes());
    out
}

/// The parts as plain text.
pub fn plain(parts: &[Part<'_>]) -> String {
    let mut out = String::with_capacity(
        parts.iter().map(|p| if let Part::Kept(d) = p { d.plain.len() } else { 0 }).sum::<usize>() + 1024,
    );
    for part in parts {
        out.push_str(match part {
            Part::Kept(d) => &d.plain,
            Part::Fresh(s) => s,
        });
    }
    out
}

/// Whether the request's `Accept-Encoding` takes gzip (RFC 9110 §12.5.3): an entry for gzip (or
/// x-gzip) decides by its weight, else `*` does; a weight of 0, or one that is not a number, refuses.
pub fn accepts_gzip(req: &HttpRequest) -> bool {
    let (mut gzip, mut any) = (None, None);
    for coding in
        req.headers().get_all(ACCEPT_ENCODING).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','))
    {
        let mut params = coding.split(';');
        let name = params.next().unwrap_or("").trim();
        let weight = params
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok());
        let taken = weight.is_some_and(|q| q > 0.0);
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.unwrap_or(false) || taken);
        } else if name == "*" {
            any = Some(taken);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// A page answer from its parts, compressed when the browser takes gzip; never stored by caches.
pub fn page(req: &HttpRequest, status: StatusCode, parts: &[Part<'_>]) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((VARY, "accept-encoding"));
    if accepts_gzip(req) {
        response.insert_header((CONTENT_ENCODING, "gzip")).body(gzip(parts))
    } else {
        response.body(plain(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn gunzip(data: &[u8]) -> String {
        let mut out = String::new();
        flate2::read::GzDecoder::new(data).read_to_string(&mut out).expect("a valid gzip member");
        out
    }

    #[test]
    fn kept_and_fresh_parts_join_into_one_gzip_member() {
        let head = Deflated::new("<!doctype html><header>全国の数値".repeat(3)).unwrap();
        let map = Deflated::new("<path d=\"M1 2L3 4Z\"/>".repeat(5_000)).unwrap();
        let empty = Deflated::new(String::new()).unwrap();
        // A fresh part longer than one stored block, and an empty one.
        let long = "田中 美穂".repeat(10_000);
        let parts = [
            Part::Kept(&head),
            Part::Fresh("<nav>田中 美穂 さん</nav>"),
            Part::Kept(&empty),
            Part::Fresh(""),
            Part::Kept(&map),
            Part::Fresh(&long),
        ];
        let zipped = gzip(&parts);
        assert_eq!(gunzip(&zipped), plain(&parts), "the CRC and length in the trailer check out too");
        // The fresh parts go in stored; the kept ones stay compressed.
        assert!(zipped.len() < long.len() + map.text().len() / 10, "{} bytes", zipped.len());
        assert_eq!(map.text().len(), 5_000 * 21);
    }

    #[test]
    fn gzip_is_sent_only_where_asked_for() {
        let asks = |value: &str| {
            let req = actix_web::test::TestRequest::default()
                .insert_header((ACCEPT_ENCODING, value))
                .to_http_request();
            accepts_gzip(&req)
        };
        assert!(asks("gzip, deflate, br, zstd"), "what Chromium sends");
        assert!(asks("br;q=1.0, gzip;q=0.8, *;q=0.1"));
        assert!(asks("*"));
        assert!(!asks("gzip;q=0, identity"));
        assert!(!asks("gzip;Q=0"), "the weight's name in any case");
        assert!(!asks("gzip;q=0, *"), "gzip refused by name, whatever * says");
        assert!(asks("*;q=0, gzip"));
        assert!(!asks("gzip;q=nan"), "a weight that is not a number refuses");
        assert!(!asks("identity"));
        assert!(!asks("deflate, br"));
        assert!(!accepts_gzip(&actix_web::test::TestRequest::default().to_http_request()), "no header");
    }
}

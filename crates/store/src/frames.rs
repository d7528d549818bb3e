//! Entries laid one after another as `tag (N bytes) ‖ length u32 BE ‖ value`: how an event
//! page holds its events (`pages`: the tag is the sequence, big-endian) and a request page its
//! idempotency records (`requests`: the tag is the request id). One framing, read and written
//! here, so that both kinds of page are cut short, and found so, the same way.

use std::ops::Range;

/// Bytes of the length after the tag.
const LENGTH_LEN: usize = 4;

/// Appends one entry: `tag`, the length of the value, then the value's `parts` one after the
/// other.
pub(crate) fn push<const N: usize>(page: &mut Vec<u8>, tag: &[u8; N], parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    let length = u32::try_from(len).expect("a stored value fits in 4 GiB");
    page.reserve(N + LENGTH_LEN + len);
    page.extend_from_slice(tag);
    page.extend_from_slice(&length.to_be_bytes());
    for part in parts {
        page.extend_from_slice(part);
    }
}

/// Where a page stops making sense.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cut<const N: usize> {
    /// The page ends inside an entry's tag or length, `at` bytes in.
    InHeader { at: usize },
    /// The entry tagged `tag` claims more bytes than the page has left.
    InValue {
        tag: [u8; N],
        claims: usize,
        left: usize,
    },
}

/// The entries of a page, from byte `at`: `(tag, where its value lies in the page)` each, in
/// the order stored, then at most one [`Cut`] (after which nothing more is read).
#[derive(Clone, Debug)]
pub(crate) struct Frames<'a, const N: usize> {
    pub page: &'a [u8],
    pub at: usize,
}

impl<'a, const N: usize> Frames<'a, N> {
    pub(crate) fn new(page: &'a [u8]) -> Self {
        Frames { page, at: 0 }
    }
}

impl<const N: usize> Iterator for Frames<'_, N> {
    type Item = Result<([u8; N], Range<usize>), Cut<N>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.page.get(self.at..).filter(|rest| !rest.is_empty())?;
        let Some((tag, rest)) = rest.split_first_chunk::<N>() else {
            return Some(Err(self.cut_in_header()));
        };
        let Some((length, _)) = rest.split_first_chunk::<LENGTH_LEN>() else {
            return Some(Err(self.cut_in_header()));
        };
        let claims = u32::from_be_bytes(*length) as usize;
        let start = self.at + N + LENGTH_LEN;
        let left = self.page.len() - start;
        if claims > left {
            self.at = self.page.len();
            return Some(Err(Cut::InValue {
                tag: *tag,
                claims,
                left,
            }));
        }
        self.at = start + claims;
        Some(Ok((*tag, start..self.at)))
    }
}

impl<const N: usize> Frames<'_, N> {
    fn cut_in_header(&mut self) -> Cut<N> {
        let at = self.at;
        self.at = self.page.len();
        Cut::InHeader { at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_as_pushed_and_a_cut_anywhere_is_found() {
        let mut page = Vec::new();
        push(&mut page, &[1, 2], &[b"ab", b"c"]);
        push(&mut page, &[3, 4], &[]);
        assert_eq!(page, [1, 2, 0, 0, 0, 3, b'a', b'b', b'c', 3, 4, 0, 0, 0, 0]);
        let entries: Vec<_> = Frames::<2>::new(&page).collect();
        assert_eq!(entries, [Ok(([1, 2], 6..9)), Ok(([3, 4], 15..15))]);

        for cut in 1..9 {
            let entries: Vec<_> = Frames::<2>::new(&page[..cut]).collect();
            let expected = if cut < 6 {
                Cut::InHeader { at: 0 }
            } else {
                Cut::InValue {
                    tag: [1, 2],
                    claims: 3,
                    left: cut - 6,
                }
            };
            assert_eq!(entries, [Err(expected)], "cut at {cut}");
        }
    }
}

//! The receiver of a verified transfer: `tree::RangeDecoder` fed the
//! honest pieces of a range, then pieces a peer changed.

use vault_client::tree::{plan, OutboardBuilder, Piece, Plan, RangeDecoder, GROUP_SIZE};

/// Largest content the target builds: a little over three groups, so the
/// tree has two levels of parents and the target stays fast.
const CONTENT_LEN_MAX: u64 = 3 * GROUP_SIZE + 64;

/// The input chooses a content size, a range (possibly invalid), the
/// content's bytes, and then edits to the honest piece stream (flip a
/// byte, cut, extend, drop, repeat or swap a piece, or replace it with raw
/// input). Properties: the decoder refuses exactly the ranges the sender's
/// plan refuses; every byte it hands out is the content's byte at that
/// offset and inside the range; when it says it is done it has handed out
/// the whole range; and the unedited stream always verifies.
pub fn tree_decoder(data: &[u8]) {
    let mut input = Input(data);
    let size = u64::from(input.u16()) % (CONTENT_LEN_MAX + 1);
    let size = if input.u8() & 1 == 1 {
        size
    } else {
        size % 512
    };
    let start = u64::from(input.u16()) % (size + 2);
    let end = u64::from(input.u16()) % (size + 2);
    let content = content(size, input.u8());
    let mut builder = OutboardBuilder::new();
    builder.update(&content);
    let (root, outboard) = builder.finalize();
    assert_eq!(root, blake3::hash(&content), "the tree's root is BLAKE3's");
    let range = start..end;
    let (Ok(pieces), Ok(mut decoder)) = (
        plan(size, range.clone()),
        RangeDecoder::new(&root, size, range.clone()),
    ) else {
        assert!(
            plan(size, range.clone()).is_err(),
            "sender and receiver disagree"
        );
        assert!(RangeDecoder::new(&root, size, range.clone()).is_err());
        assert!(Plan::encoded_len(size, range).is_err());
        return;
    };
    let honest: Vec<Vec<u8>> = pieces
        .map(|piece| match piece {
            Piece::Pair { index } => outboard.pair(index).expect("planned pair").to_vec(),
            Piece::Group { offset, len, .. } => content[offset as usize..][..len as usize].to_vec(),
        })
        .collect();
    let total: u64 = honest.iter().map(|p| p.len() as u64).sum();
    assert_eq!(Plan::encoded_len(size, range.clone()), Ok(total));
    let sent = edit(honest.clone(), &mut input);
    let mut out = Vec::new();
    let mut failed = false;
    for piece in &sent {
        match decoder.verify_next(piece) {
            Ok(Some(verified)) => {
                let at = verified.offset as usize;
                assert!(verified.offset >= range.start);
                assert!(verified.offset + verified.bytes.len() as u64 <= range.end);
                assert_eq!(verified.bytes, &content[at..at + verified.bytes.len()]);
                assert_eq!(verified.offset, range.start + out.len() as u64, "in order");
                out.extend_from_slice(verified.bytes);
            }
            Ok(None) => {}
            Err(e) => {
                let _ = e.code();
                failed = true;
                break;
            }
        }
    }
    if failed {
        assert!(
            decoder.verify_next(&[]).is_err(),
            "a failed decoder stays failed"
        );
        assert!(!decoder.is_done());
    }
    if decoder.is_done() {
        let wanted = &content[range.start as usize..range.end.max(range.start) as usize];
        assert_eq!(out, wanted, "done means the whole range was handed out");
    }
    if sent == honest {
        assert!(decoder.is_done(), "the honest stream verifies");
    }
}

/// Content of `size` bytes, a cheap pattern of `seed`.
fn content(size: u64, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(seed | 1) ^ (i >> 9) as u8)
        .collect()
}

/// Applies the edits the rest of the input asks for to the piece stream.
fn edit(mut pieces: Vec<Vec<u8>>, input: &mut Input<'_>) -> Vec<Vec<u8>> {
    while let Some(op) = input.next() {
        if pieces.is_empty() {
            pieces.push(input.rest().to_vec());
            break;
        }
        let k = usize::from(input.u8()) % pieces.len();
        match op % 7 {
            0 => {
                let at = usize::from(input.u16()) % pieces[k].len().max(1);
                if let Some(byte) = pieces[k].get_mut(at) {
                    *byte ^= input.u8() | 1;
                }
            }
            1 => {
                let cut = usize::from(input.u8()) + 1;
                let len = pieces[k].len().saturating_sub(cut);
                pieces[k].truncate(len);
            }
            2 => pieces[k].push(input.u8()),
            3 => {
                pieces.remove(k);
            }
            4 => pieces.insert(k, pieces[k].clone()),
            5 => {
                let next = (k + 1) % pieces.len();
                pieces.swap(k, next);
            }
            _ => {
                pieces[k] = input.rest().to_vec();
                break;
            }
        }
    }
    pieces
}

/// The fuzzer's bytes read front to back; zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn u8(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn rest(&mut self) -> &[u8] {
        std::mem::take(&mut self.0)
    }
}

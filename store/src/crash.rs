//! Crash images for tests: a copy of a store directory as the disk might hold it after a power
//! loss. CommitLog bytes below the durable (flushed) offset survive exactly; every page past it is
//! independently kept (the kernel had written it back), lost (reads as zeros) or torn (a random
//! number of leading 512-byte sectors survive). Other files are copied as the page cache held them,
//! which is the hardest case for recovery: ConsumeQueue units may point at CommitLog bytes that
//! were lost.

use std::io;
use std::path::Path;

use crate::commit_log::parse_segment_file_name;
use crate::mmap::OS_PAGE_SIZE;

const SECTOR_BYTES: u64 = 512;

/// How the pages past the durable offset fare.
#[derive(Debug, Clone, Copy)]
pub struct CrashSpec {
    /// Seed of the page fate generator (printed by tests on failure).
    pub seed: u64,
    /// Percent of unsynced pages kept whole.
    pub keep_percent: u32,
    /// Percent of unsynced pages torn (the rest of the unsynced pages are lost).
    pub torn_percent: u32,
}

/// A small deterministic generator (xorshift64*), so the image depends only on the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Copies the store at `src` to `dst` (which must not exist) as a crash image. `durable` is the
/// CommitLog offset below which bytes were synced; segment files are recognised in a directory
/// named `commitlog`. The `lock` file is not copied.
pub fn crash_image(src: &Path, dst: &Path, durable: u64, spec: CrashSpec) -> io::Result<()> {
    let mut rng = Rng::new(spec.seed);
    copy_tree(src, dst, &mut |rel, bytes| {
        let in_log = rel.parent().and_then(|p| p.file_name()) == Some("commitlog".as_ref());
        let base = rel
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_segment_file_name);
        if let (true, Some(base)) = (in_log, base) {
            damage_segment(bytes, base, durable, &spec, &mut rng);
        }
    })
}

/// Applies page fates to one segment's bytes.
pub fn damage_segment(bytes: &mut [u8], base: u64, durable: u64, spec: &CrashSpec, rng: &mut Rng) {
    let len = bytes.len() as u64;
    let first_unsynced = durable.saturating_sub(base).min(len);
    let mut page = first_unsynced - first_unsynced % OS_PAGE_SIZE;
    while page < len {
        let end = (page + OS_PAGE_SIZE).min(len);
        // Bytes of this page below the durable offset survive whatever happens to the rest.
        let from = page.max(first_unsynced);
        let roll = rng.below(100) as u32;
        let lost_from = if roll < spec.keep_percent {
            end
        } else if roll < spec.keep_percent + spec.torn_percent {
            let sectors = (end - page).div_ceil(SECTOR_BYTES);
            (page + rng.below(sectors + 1) * SECTOR_BYTES).min(end)
        } else {
            page
        };
        let lost_from = lost_from.max(from);
        if let Some(b) = bytes.get_mut(lost_from as usize..end as usize) {
            b.fill(0);
        }
        page = end;
    }
}

fn copy_tree(src: &Path, dst: &Path, edit: &mut dyn FnMut(&Path, &mut Vec<u8>)) -> io::Result<()> {
    fn walk(
        root: &Path,
        dir: &Path,
        dst: &Path,
        edit: &mut dyn FnMut(&Path, &mut Vec<u8>),
    ) -> io::Result<()> {
        std::fs::create_dir_all(dst.join(dir.strip_prefix(root).unwrap_or(dir)))?;
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            if e.file_type()?.is_dir() {
                walk(root, &p, dst, edit)?;
            } else if rel != Path::new("lock") {
                let mut bytes = std::fs::read(&p)?;
                edit(&rel, &mut bytes);
                std::fs::write(dst.join(&rel), &bytes)?;
            }
        }
        Ok(())
    }
    walk(src, src, dst, edit)
}

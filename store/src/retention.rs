//! Retention and disk-space guard (RocketMQ's CleanCommitLogService): each round measures the disk,
//! marks the store disk-full above `diskSpaceWarningLevelRatio`, and when it is time
//! (`deleteWhen`) or the disk is above `diskMaxUsedSpaceRatio`, deletes a few of the oldest
//! segments older than `fileReservedTime` (any age above `diskSpaceCleanForciblyRatio`), then the
//! ConsumeQueue and IndexFile files that only point below the new minimum.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use crate::commit_log::{now_ms, CommitLog, Segment};
use crate::consume_queue::ConsumeQueues;
use crate::index_file::IndexService;
use crate::mmap::DiskSpace;
use crate::record;

/// Measures the disk holding a path (statvfs in production; tests substitute their own).
pub type DiskProbe = Arc<dyn Fn(&Path) -> io::Result<DiskSpace> + Send + Sync>;

/// The retention knobs, named after RocketMQ's keys.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    pub file_reserved_time_ms: u64,
    /// Hours of the day (UTC) at which expired files are deleted (`deleteWhen`).
    pub delete_when_hours: Vec<u32>,
    pub disk_max_used_space_ratio: f64,
    pub disk_space_clean_forcibly_ratio: f64,
    pub disk_space_warning_level_ratio: f64,
    /// `deleteFileBatchMax`: segments deleted per round at most.
    pub delete_file_batch_max: usize,
}

/// Parses `deleteWhen` ("04", "01;13"): the hours it names; unparsable parts are ignored.
pub fn parse_delete_when(s: &str) -> Vec<u32> {
    s.split(';')
        .filter_map(|h| h.trim().parse::<u32>().ok())
        .filter(|h| *h < 24)
        .collect()
}

/// What one round saw and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionRound {
    pub used_percent: f64,
    pub disk_full: bool,
    pub deleted_segments: Vec<u64>,
    pub deleted_cq_files: usize,
    pub deleted_index_files: usize,
}

/// One retention round. `hour` is passed in so tests can step time.
pub fn run_round(
    policy: &RetentionPolicy,
    log: &CommitLog,
    cqs: &ConsumeQueues,
    index: Option<&IndexService>,
    probe: &DiskProbe,
    hour: u32,
) -> RetentionRound {
    let mut round = RetentionRound::default();
    let space = match probe(log.dir()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot measure disk space");
            return round;
        }
    };
    round.used_percent = space.used_percent();
    round.disk_full = round.used_percent > policy.disk_space_warning_level_ratio;
    let was_full = log.disk_full.swap(round.disk_full, Ordering::AcqRel);
    if round.disk_full && !was_full {
        tracing::error!(
            used = round.used_percent,
            "disk almost full; refusing writes"
        );
    } else if was_full && !round.disk_full {
        tracing::info!(
            used = round.used_percent,
            "disk space recovered; accepting writes"
        );
    }
    let clean_now = round.used_percent > policy.disk_space_clean_forcibly_ratio;
    let time_up = policy.delete_when_hours.contains(&hour);
    let space_up = round.used_percent > policy.disk_max_used_space_ratio;
    if !(time_up || space_up) {
        return round;
    }
    let now = now_ms();
    let segs = log.segments();
    let reserved = policy.file_reserved_time_ms as i64;
    round.deleted_segments = log.delete_leading(policy.delete_file_batch_max, |seg| {
        clean_now || newest_time_ms(seg, &segs).is_some_and(|t| now.saturating_sub(t) >= reserved)
    });
    if round.deleted_segments.is_empty() {
        return round;
    }
    let min_phy = log.min_offset();
    for cq in cqs.all() {
        match cq.delete_files_below_phy(min_phy) {
            Ok(n) => round.deleted_cq_files += n,
            Err(e) => tracing::warn!(error = %e, "deleting ConsumeQueue files failed"),
        }
    }
    if let Some(index) = index {
        match index.delete_files_below_phy(min_phy) {
            Ok(n) => round.deleted_index_files += n,
            Err(e) => tracing::warn!(error = %e, "deleting index files failed"),
        }
    }
    tracing::info!(?round, "retention round");
    round
}

/// The newest store time in `seg`: the first record of the next segment was stored after every
/// record of this one, so its timestamp bounds them; without one, the file's mtime.
fn newest_time_ms(seg: &Segment, all: &[Arc<Segment>]) -> Option<i64> {
    let next = all.iter().find(|s| s.base() == seg.end());
    let from_next = next.and_then(|n| {
        let head = n.mapped().read(0, n.mapped().published())?;
        let r = record::decode_record(head).ok()?;
        Some(r.store_timestamp)
    });
    from_next.or_else(|| {
        let m = std::fs::metadata(seg.mapped().path())
            .ok()?
            .modified()
            .ok()?;
        let d = m.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        Some(d.as_millis() as i64)
    })
}

/// The current hour of the day in the machine's time zone: `deleteWhen` is read like RocketMQ
/// reads it (`Calendar.getInstance()`, local time), so "04" means 4 a.m. where the broker runs.
pub fn hour_local_now() -> u32 {
    use chrono::Timelike;
    chrono::Local::now().hour()
}

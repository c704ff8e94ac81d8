//! The schedule's actions and each seed's fault profile (swarm testing).

use super::MAX_ENTRIES;

/// One step of the schedule.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    Process,
    Respond,
    Metadata,
    Append,
    CrashOrRestart,
    SlowBookie,
    /// A connection of the writer resets.
    ResetWriter,
    /// A connection of a recovery resets.
    ResetRecovery,
    StartRecovery,
    Close,
    Idle,
}

/// How often each action is picked. Each seed draws its own fault weights ("swarm testing"):
/// a seed heavy on one fault reaches deep interleavings of it that uniform weights make rare.
#[derive(Debug)]
pub(super) struct Profile {
    weights: Vec<(Action, u32)>,
    total: u32,
    /// How fast the writer's connection to each bookie (by index) delivers, in eighths of
    /// every other connection's speed: a slow connection's adds arrive long after they were
    /// sent.
    pub(super) writer_link_speed: Vec<u32>,
    /// When a recovery starts, its fence to one bookie is lost.
    pub(super) lose_fence: bool,
    /// How many entries the writer appends, and after how many a recovery may start.
    pub(super) appends: u64,
    pub(super) recovery_after: u64,
}

impl Profile {
    /// A seed's profile: usually a random mix of faults; one seed in eight is a
    /// [`Profile::degraded_writer`] race.
    pub(super) fn draw(rng: &mut fastrand::Rng) -> Profile {
        if rng.u32(..8) == 0 {
            return Profile::degraded_writer(rng);
        }
        let mut fault = || [0, 1, 2, 4][rng.usize(..4)];
        let weights = Profile::weights(
            3 * fault(),
            2 * fault(),
            2 * fault(),
            4 * fault(),
            1 + fault(),
        );
        let slow_links = rng.u32(..3) == 0;
        let writer_link_speed = (0..8)
            .map(|_| {
                if slow_links && rng.u32(..3) == 0 {
                    1
                } else {
                    8
                }
            })
            .collect();
        let lose_fence = rng.u32(..4) == 0;
        Profile::new(weights, writer_link_speed, lose_fence, MAX_ENTRIES, 30)
    }

    /// Few entries, the writer's node slow on every connection (often why another node starts
    /// a recovery), the recovery's fence to one bookie lost, and no other faults: the races
    /// between a recovery's reads and the old writer's last adds, which many entries in flight
    /// or other faults make rare (any refusal the writer hears first stops it).
    pub(super) fn degraded_writer(rng: &mut fastrand::Rng) -> Profile {
        let appends = rng.u64(1..=4);
        let recovery_after = rng.u64(..appends);
        Profile::new(
            Profile::weights(0, 0, 0, 0, 2),
            vec![1; 8],
            true,
            appends,
            recovery_after,
        )
    }

    fn weights(
        crash: u32,
        slow: u32,
        reset_writer: u32,
        reset_recovery: u32,
        recovery: u32,
    ) -> Vec<(Action, u32)> {
        vec![
            (Action::Process, 40),
            (Action::Respond, 35),
            (Action::Metadata, 5),
            (Action::Append, 10),
            (Action::CrashOrRestart, crash),
            (Action::SlowBookie, slow),
            (Action::ResetWriter, reset_writer),
            (Action::ResetRecovery, reset_recovery),
            (Action::StartRecovery, recovery),
            (Action::Close, 1),
            (Action::Idle, 3),
        ]
    }

    fn new(
        weights: Vec<(Action, u32)>,
        writer_link_speed: Vec<u32>,
        lose_fence: bool,
        appends: u64,
        recovery_after: u64,
    ) -> Profile {
        let total = weights.iter().map(|(_, w)| w).sum();
        Profile {
            weights,
            total,
            writer_link_speed,
            lose_fence,
            appends,
            recovery_after,
        }
    }

    pub(super) fn pick(&self, rng: &mut fastrand::Rng) -> Action {
        let mut x = rng.u32(..self.total);
        for &(a, w) in &self.weights {
            if x < w {
                return a;
            }
            x -= w;
        }
        unreachable!("x < total")
    }
}

//! Password hashing on a fixed pool of worker threads ([`HashingPool`]).
//!
//! Each argon2id hash needs 19 MiB of working memory. Hashing on an unbounded blocking pool let
//! a burst of sign-ups run hundreds of hashes at once (a 200-request burst took the process to
//! 3.8 GiB), and glibc kept the memory afterwards: once a freed 19 MiB block raises its
//! dynamic mmap threshold, later blocks come from arenas that are never trimmed (see
//! `docs/BENCHMARKS.md`). Here a fixed number of workers (one per core by default) each own one
//! argon2 memory block, allocated on first use and reused for every hash, so hashing never
//! allocates 19 MiB per request and the memory it uses is bounded by the worker count.
//!
//! Jobs wait in a bounded queue; a job that finds the queue full, or waits longer than the
//! configured limit, is answered [`HashingError::Busy`] (a Clerk-shaped 429 with
//! `Retry-After`) instead of piling up. The PHC strings are built and checked here with the
//! `argon2` crate's `*_with_memory` API, so hashes stored by earlier versions (produced by
//! `argon2`'s own `PasswordHasher`, `$argon2id$v=19$m=19456,t=2,p=1$…`) verify unchanged.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::passwords::{self, WeakPassword};

/// Limits of the password-hashing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLimits {
    /// Hashing threads, each holding one 19 MiB argon2 block; `0` means one per CPU core.
    pub workers: usize,
    /// Jobs that may wait for a worker, per worker; more are refused at once.
    pub queue_per_worker: usize,
    /// Longest a job may wait for a worker before it is refused.
    pub max_wait: Duration,
}

impl Default for HashingLimits {
    fn default() -> Self {
        HashingLimits {
            workers: 0,
            queue_per_worker: 32,
            max_wait: Duration::from_secs(2),
        }
    }
}

/// Why the pool gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashingError {
    /// The queue was full or the job waited too long: try again shortly.
    Busy,
    /// A worker failed on this job (logged); the pool keeps running.
    Failed,
}

impl From<HashingError> for ApiError {
    fn from(error: HashingError) -> Self {
        match error {
            HashingError::Busy => ApiError::too_many_requests(
                "The identity provider is busy checking other passwords. Try again in a second."
                    .to_owned(),
                BUSY_RETRY_AFTER,
            ),
            HashingError::Failed => ApiError::internal(&"a password-hashing job failed"),
        }
    }
}

/// `Retry-After` when the pool is saturated: bursts are short, and each worker finishes a
/// hash in tens of milliseconds.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Largest argon2 memory cost (KiB) accepted from a stored hash. The idp writes the default
/// (19 MiB); this bounds what a worker's block may grow to when checking other hashes.
const MAX_M_COST_KIB: u32 = 64 * 1024;
const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;

enum Task {
    /// Check a new password against the policy, then hash it.
    HashNew {
        password: String,
        /// `None`: skip the strength rules (Clerk's `skip_password_checks`).
        user_inputs: Option<Vec<String>>,
    },
    /// Check a password against a stored PHC string (`None`: the same work on a dummy hash).
    Verify {
        password: String,
        stored: Option<String>,
    },
}

enum Answer {
    Hashed(Result<String, WeakPassword>),
    Verified(bool),
    Busy,
    Failed,
}

struct Job {
    task: Task,
    enqueued: Instant,
    reply: oneshot::Sender<Answer>,
}

/// The pool (see the module doc). Its workers stop when it is dropped.
pub(crate) struct HashingPool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl HashingPool {
    pub(crate) fn new(limits: HashingLimits) -> Self {
        let workers = match limits.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let (jobs, queue) = std::sync::mpsc::sync_channel(workers * limits.queue_per_worker.max(1));
        let queue = Arc::new(Mutex::new(queue));
        let handles: Vec<JoinHandle<()>> = (0..workers)
            .filter_map(|i| {
                let queue = Arc::clone(&queue);
                let max_wait = limits.max_wait;
                std::thread::Builder::new()
                    .name(format!("keel-idp-hasher-{i}"))
                    .spawn(move || work(&queue, max_wait))
                    .inspect_err(
                        |e| tracing::error!(error = %e, "could not start a hashing thread"),
                    )
                    .ok()
            })
            .collect();
        HashingPool {
            // Without workers a queued job would never be answered: refuse at once instead.
            jobs: (!handles.is_empty()).then_some(jobs),
            workers: handles,
        }
    }

    /// Checks `password` against the policy (with `user_inputs` such as the email and names as
    /// words to avoid) and hashes it into a PHC string.
    pub(crate) async fn hash_new(
        &self,
        password: String,
        user_inputs: Option<Vec<String>>,
    ) -> Result<Result<String, WeakPassword>, HashingError> {
        match self
            .run(Task::HashNew {
                password,
                user_inputs,
            })
            .await
        {
            Answer::Hashed(result) => Ok(result),
            Answer::Verified(_) | Answer::Failed => Err(HashingError::Failed),
            Answer::Busy => Err(HashingError::Busy),
        }
    }

    /// Checks `password` against `stored`, doing the same work when there is no stored hash
    /// (unknown user, or a user without a password), so timing does not tell them apart.
    pub(crate) async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashingError> {
        match self.run(Task::Verify { password, stored }).await {
            Answer::Verified(ok) => Ok(ok),
            Answer::Hashed(_) | Answer::Failed => Err(HashingError::Failed),
            Answer::Busy => Err(HashingError::Busy),
        }
    }

    async fn run(&self, task: Task) -> Answer {
        let Some(jobs) = &self.jobs else {
            return Answer::Failed;
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            task,
            enqueued: Instant::now(),
            reply,
        };
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Answer::Busy,
            Err(TrySendError::Disconnected(_)) => return Answer::Failed,
        }
        // If this future is dropped (the client went away), the worker sees the closed reply
        // channel and skips the job.
        answer.await.unwrap_or(Answer::Failed)
    }
}

impl Drop for HashingPool {
    fn drop(&mut self) {
        // Closing the queue ends each worker after its current job; they are not joined here
        // (that could block an async thread for a hash), only released.
        self.jobs = None;
        self.workers.clear();
    }
}

/// A worker: takes jobs until the queue closes, reusing one argon2 memory block.
fn work(queue: &Mutex<Receiver<Job>>, max_wait: Duration) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = {
            let queue = queue.lock();
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if job.reply.is_closed() {
            continue;
        }
        let answer = if job.enqueued.elapsed() > max_wait {
            Answer::Busy
        } else {
            std::panic::catch_unwind(AssertUnwindSafe(|| run_task(job.task, &mut memory)))
                .unwrap_or_else(|_| {
                    tracing::error!("a password-hashing job panicked; the worker goes on");
                    Answer::Failed
                })
        };
        let _ = job.reply.send(answer);
    }
}

fn run_task(task: Task, memory: &mut Vec<Block>) -> Answer {
    match task {
        Task::HashNew {
            password,
            user_inputs,
        } => Answer::Hashed(
            user_inputs
                .map_or(Ok(()), |inputs| {
                    passwords::check_strength(&password, &inputs)
                })
                .and_then(|()| {
                    hash(password.as_bytes(), memory).map_err(|e| {
                        tracing::error!(error = %e, "argon2 hashing failed");
                        WeakPassword::unhashable()
                    })
                }),
        ),
        Task::Verify { password, stored } => {
            let ok = match &stored {
                Some(phc) => verify(password.as_bytes(), phc, memory),
                None => {
                    // The same work as a real check, and never a match.
                    let dummy = dummy_hash(memory);
                    std::hint::black_box(verify(password.as_bytes(), dummy, memory));
                    false
                }
            };
            Answer::Verified(ok)
        }
    }
}

/// A hash of a random password, checked against when there is no stored hash.
fn dummy_hash(memory: &mut Vec<Block>) -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash(crate::ids::random_chars(24).as_bytes(), memory).unwrap_or_else(|e| {
            tracing::error!(error = %e, "argon2 dummy hash failed");
            String::new()
        })
    })
}

/// The first `blocks` blocks of the worker's memory, growing it when needed.
fn blocks(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    &mut memory[..blocks]
}

/// argon2id with the default parameters and a random 16-byte salt, as a PHC string.
pub(crate) fn hash(password: &[u8], memory: &mut Vec<Block>) -> Result<String, String> {
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| "the OS random generator failed".to_owned())?;
    let mut out = [0u8; OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(
            password,
            &salt,
            &mut out,
            blocks(memory, params.block_count()),
        )
        .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Checks `password` against an argon2 PHC string (any variant, version and parameters up to
/// [`MAX_M_COST_KIB`]); anything unparsable never matches.
pub(crate) fn verify(password: &[u8], phc: &str, memory: &mut Vec<Block>) -> bool {
    let checked = (|| {
        let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
        let algorithm =
            Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| e.to_string())?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
        if params.m_cost() > MAX_M_COST_KIB {
            return Err(format!(
                "memory cost {} KiB is above the limit",
                params.m_cost()
            ));
        }
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err("no salt or hash".to_owned());
        };
        let mut out = vec![0u8; expected.len()];
        let block_count = params.block_count();
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(
                password,
                salt.as_ref(),
                &mut out,
                blocks(memory, block_count),
            )
            .map_err(|e| e.to_string())?;
        let computed = Output::new(&out).map_err(|e| e.to_string())?;
        // `Output`'s equality is constant-time.
        Ok::<bool, String>(computed == *expected)
    })();
    checked.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a stored password hash could not be checked");
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn hashes_from_reused_memory_match_the_argon2_crate_both_ways() {
        let mut memory = Vec::new();
        let ours = hash(b"correct horse", &mut memory).unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        // Dirty memory from the first hash must not change the second.
        let again = hash(b"correct horse", &mut memory).unwrap();
        assert_ne!(ours, again, "salts differ");
        for phc in [&ours, &again] {
            let parsed = PasswordHash::new(phc).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(b"correct horse", &parsed)
                    .is_ok()
            );
        }
        // A hash stored by earlier versions (argon2's own hasher) verifies here.
        let stored = Argon2::default()
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert!(verify(b"correct horse", &stored, &mut memory));
        assert!(!verify(b"wrong horse", &stored, &mut memory));
        assert!(!verify(b"correct horse", "$argon2id$nonsense", &mut memory));
        assert!(!verify(b"correct horse", "", &mut memory));
        assert_eq!(memory.len(), Params::default().block_count());
    }

    #[test]
    fn other_parameters_verify_and_huge_ones_are_refused() {
        let mut memory = Vec::new();
        let small = Params::new(1024, 1, 1, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x10, small);
        let stored = argon2i.hash_password(b"pass phrase").unwrap().to_string();
        assert!(verify(b"pass phrase", &stored, &mut memory));
        assert!(!verify(b"pass phrasf", &stored, &mut memory));
        let huge = stored.replace("m=1024", "m=4194304");
        assert!(!verify(b"pass phrase", &huge, &mut memory));
        assert!(memory.len() <= 1024);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_and_the_pool_recovers() {
        let pool = HashingPool::new(HashingLimits {
            workers: 1,
            queue_per_worker: 1,
            max_wait: Duration::from_secs(60),
        });
        let password = || "correct horse battery".to_owned();
        // One running + one queued; the rest are refused at once.
        let results =
            futures::future::join_all((0..6).map(|_| pool.verify(password(), None))).await;
        let busy = results
            .iter()
            .filter(|r| **r == Err(HashingError::Busy))
            .count();
        assert!(busy >= 4, "{results:?}");
        assert!(results.contains(&Ok(false)), "{results:?}");
        assert_eq!(pool.verify(password(), None).await, Ok(false));
    }

    #[tokio::test]
    async fn jobs_that_waited_too_long_are_refused() {
        let pool = HashingPool::new(HashingLimits {
            workers: 1,
            queue_per_worker: 8,
            max_wait: Duration::ZERO,
        });
        let results = futures::future::join_all(
            (0..4).map(|_| pool.verify("correct horse battery".to_owned(), None)),
        )
        .await;
        assert!(results.contains(&Err(HashingError::Busy)), "{results:?}");
    }
}

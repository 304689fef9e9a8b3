//! Throttles that slow attackers without locking owners out.
//!
//! **Sign-in** ([`SignInThrottle`]) keeps three records, all in bounded maps:
//! * per client address, across accounts: a bucket of failed checks (credential stuffing from
//!   one address);
//! * per account *and* address: growing delays after a few failures (guessing one account
//!   from one address);
//! * per account: a bucket of failed checks from addresses that have not signed in to that
//!   account recently (guessing one account from many addresses). Addresses that have signed in
//!   successfully are remembered per account and skip this bucket, so the owner keeps getting in
//!   from where they usually sign in however many addresses an attacker uses.
//!
//! An attacker who does not know the password therefore slows only their own addresses; one
//! address can never drain an account's bucket (its own delays grow faster than the bucket
//! refills), so the owner signing in from any other address is untouched. Many addresses can
//! drain it: then the owner on a network never used with the account waits like the attackers
//! (guesses from a new address cannot be told apart from the owner on one), while the networks
//! the owner has used keep working.
//!
//! Every check is charged *before* the password is hashed, so concurrent guesses cannot slip
//! through together; a correct password (or a check that never ran) gives the charge back.
//!
//! **Sign-up** ([`SignUpThrottle`]): a bucket of user creations per reported client address.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{ApiError, retry_after_secs};
use crate::limiter::{
    AddressKey, BoundedMap, Bucket, Expiring, FailureBackoff, Failures, RateLimit,
};

/// Entries per map: enough for every active user and attacker address of a development idp,
/// small enough (a few MiB per map) that a flood of fresh keys cannot exhaust memory.
const TRACKED_KEYS: usize = 50_000;
/// A quiet account/address pair forgets its failures after this long.
const FORGET_FAILURES_AFTER: Duration = Duration::from_secs(3600);
/// How long a successful sign-in address stays familiar to its account.
const FAMILIAR_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Familiar addresses remembered per account (the most recent ones).
const FAMILIAR_PER_ACCOUNT: usize = 8;

/// The limits of [`SignInThrottle`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignInLimits {
    pub(crate) per_address: RateLimit,
    pub(crate) per_account_from_unfamiliar: RateLimit,
    pub(crate) per_account_address: FailureBackoff,
}

/// Why an attempt was refused, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// This address failed too often across accounts.
    Address(Duration),
    /// This address failed too often on this account.
    AccountFromAddress(Duration),
    /// The account failed too often from addresses it does not know.
    Account(Duration),
    /// This address created too many users.
    SignUps(Duration),
}

impl Refusal {
    pub(crate) fn retry_after(self) -> Duration {
        match self {
            Refusal::Address(d)
            | Refusal::AccountFromAddress(d)
            | Refusal::Account(d)
            | Refusal::SignUps(d) => d,
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let secs = retry_after_secs(refusal.retry_after());
        let what = match refusal {
            Refusal::Address(_) => "Too many failed password attempts from your network.",
            Refusal::AccountFromAddress(_) => {
                "Too many failed password attempts for this account from your network."
            }
            Refusal::Account(_) => {
                "Too many failed password attempts for this account from networks it has not \
                 signed in from before. Signing in from a network you have used with this \
                 account still works."
            }
            Refusal::SignUps(_) => "Too many accounts were created from your network.",
        };
        ApiError::too_many_requests(
            format!(
                "{what} Try again in {secs} second{}.",
                if secs == 1 { "" } else { "s" }
            ),
            refusal.retry_after(),
        )
    }
}

/// How a checked attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Correct,
    Wrong,
    /// The password was never checked (the idp failed or was too busy): nothing counts.
    NotChecked,
}

/// An attempt that passed the throttle and was charged; hand it back with
/// [`SignInThrottle::finish`].
#[must_use]
pub(crate) struct Attempt {
    account: String,
    address: AddressKey,
    charged_account: bool,
}

struct AddressBucket {
    bucket: Bucket,
    limit: RateLimit,
}

impl Expiring for AddressBucket {
    fn is_spent(&self, now: Instant) -> bool {
        self.bucket.is_full(self.limit, now)
    }
}

impl Expiring for Failures {
    fn is_spent(&self, now: Instant) -> bool {
        self.is_stale(FORGET_FAILURES_AFTER, now)
    }
}

/// The addresses an account signed in from recently, newest last.
#[derive(Default)]
struct Familiar(Vec<(AddressKey, Instant)>);

impl Familiar {
    fn knows(&self, address: AddressKey, now: Instant) -> bool {
        self.0
            .iter()
            .any(|(a, at)| *a == address && now.duration_since(*at) < FAMILIAR_FOR)
    }

    fn remember(&mut self, address: AddressKey, now: Instant) {
        self.0.retain(|(a, _)| *a != address);
        self.0.push((address, now));
        if self.0.len() > FAMILIAR_PER_ACCOUNT {
            self.0.remove(0);
        }
    }
}

impl Expiring for Familiar {
    fn is_spent(&self, now: Instant) -> bool {
        self.0
            .iter()
            .all(|(_, at)| now.duration_since(*at) >= FAMILIAR_FOR)
    }
}

struct SignInState {
    per_address: BoundedMap<AddressKey, AddressBucket>,
    per_account_address: BoundedMap<(String, AddressKey), Failures>,
    per_account: BoundedMap<String, AddressBucket>,
    familiar: BoundedMap<String, Familiar>,
}

/// The sign-in throttle (see the module doc).
pub(crate) struct SignInThrottle {
    limits: SignInLimits,
    state: Mutex<SignInState>,
}

impl SignInThrottle {
    pub(crate) fn new(limits: SignInLimits) -> Self {
        SignInThrottle {
            limits,
            state: Mutex::new(SignInState {
                per_address: BoundedMap::new(TRACKED_KEYS),
                per_account_address: BoundedMap::new(TRACKED_KEYS),
                per_account: BoundedMap::new(TRACKED_KEYS),
                familiar: BoundedMap::new(TRACKED_KEYS),
            }),
        }
    }

    /// Admits (and charges) a password check of `account` from `address`, or refuses it with
    /// the longest wait among the limits it hit.
    pub(crate) fn begin(&self, account: &str, address: Option<IpAddr>) -> Result<Attempt, Refusal> {
        let now = Instant::now();
        let address = AddressKey::of(address);
        let limits = self.limits;
        let mut state = self.state.lock();
        let pair = (account.to_owned(), address);
        let familiar = state
            .familiar
            .get(&pair.0)
            .is_some_and(|f| f.knows(address, now));
        let mut refusals = Vec::new();
        if address != AddressKey::Unreported
            && let Some(b) = state.per_address.get(&address)
            && let Err(wait) = b.bucket.check(limits.per_address, now)
        {
            refusals.push(Refusal::Address(wait));
        }
        if let Some(f) = state.per_account_address.get(&pair)
            && let Err(wait) = f.check(limits.per_account_address, now)
        {
            refusals.push(Refusal::AccountFromAddress(wait));
        }
        if !familiar
            && let Some(b) = state.per_account.get(&pair.0)
            && let Err(wait) = b.bucket.check(limits.per_account_from_unfamiliar, now)
        {
            refusals.push(Refusal::Account(wait));
        }
        if let Some(longest) = refusals.into_iter().max_by_key(|r| r.retry_after()) {
            return Err(longest);
        }
        if address != AddressKey::Unreported {
            let limit = limits.per_address;
            let b = state.per_address.touch(&address, now, || AddressBucket {
                bucket: Bucket::full(limit, now),
                limit,
            });
            b.bucket.take(limit, now);
        }
        state
            .per_account_address
            .touch(&pair, now, || Failures::none(now))
            .add(now);
        if !familiar {
            let limit = limits.per_account_from_unfamiliar;
            let b = state.per_account.touch(&pair.0, now, || AddressBucket {
                bucket: Bucket::full(limit, now),
                limit,
            });
            b.bucket.take(limit, now);
        }
        Ok(Attempt {
            account: pair.0,
            address,
            charged_account: !familiar,
        })
    }

    /// Settles an attempt: a wrong password keeps its charges; a correct one gives them back,
    /// clears the account/address failures and makes the address familiar to the account.
    pub(crate) fn finish(&self, attempt: Attempt, verdict: Verdict) {
        if verdict == Verdict::Wrong {
            return;
        }
        let now = Instant::now();
        let limits = self.limits;
        let mut state = self.state.lock();
        let Attempt {
            account,
            address,
            charged_account,
        } = attempt;
        if address != AddressKey::Unreported
            && let Some(b) = state.per_address.touch_existing(&address, now)
        {
            b.bucket.give_back(limits.per_address, now);
        }
        if charged_account && let Some(b) = state.per_account.touch_existing(&account, now) {
            b.bucket.give_back(limits.per_account_from_unfamiliar, now);
        }
        let pair = (account, address);
        match verdict {
            Verdict::Correct => {
                state.per_account_address.remove(&pair);
                if address != AddressKey::Unreported {
                    state
                        .familiar
                        .touch(&pair.0, now, Familiar::default)
                        .remember(address, now);
                }
            }
            Verdict::NotChecked => {
                if let Some(f) = state.per_account_address.touch_existing(&pair, now) {
                    f.remove_one();
                }
            }
            Verdict::Wrong => {}
        }
    }

    /// Makes `address` familiar to `account` (its creator's address, at sign-up).
    pub(crate) fn remember(&self, account: &str, address: Option<IpAddr>) {
        let address = AddressKey::of(address);
        if address == AddressKey::Unreported {
            return;
        }
        let now = Instant::now();
        self.state
            .lock()
            .familiar
            .touch(&account.to_owned(), now, Familiar::default)
            .remember(address, now);
    }
}

/// User creations per reported client address.
pub(crate) struct SignUpThrottle {
    limit: RateLimit,
    per_address: Mutex<BoundedMap<AddressKey, AddressBucket>>,
}

impl SignUpThrottle {
    pub(crate) fn new(limit: RateLimit) -> Self {
        SignUpThrottle {
            limit,
            per_address: Mutex::new(BoundedMap::new(TRACKED_KEYS)),
        }
    }

    /// Charges one creation to `address`; calls that report no address are not limited here
    /// (they come from the secret-key holder itself, e.g. a seeding script).
    pub(crate) fn admit(&self, address: Option<IpAddr>) -> Result<(), Refusal> {
        let Some(address) = address else {
            return Ok(());
        };
        let now = Instant::now();
        let limit = self.limit;
        let mut map = self.per_address.lock();
        let b = map.touch(&AddressKey::of(Some(address)), now, || AddressBucket {
            bucket: Bucket::full(limit, now),
            limit,
        });
        b.bucket.check(limit, now).map_err(Refusal::SignUps)?;
        b.bucket.take(limit, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> SignInThrottle {
        SignInThrottle::new(SignInLimits {
            per_address: RateLimit {
                burst: 6,
                refill_every: Duration::from_secs(3600),
            },
            per_account_from_unfamiliar: RateLimit {
                burst: 4,
                refill_every: Duration::from_secs(3600),
            },
            per_account_address: FailureBackoff {
                free_failures: 2,
                first_delay: Duration::from_secs(60),
                max_delay: Duration::from_secs(600),
            },
        })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn attempt(
        t: &SignInThrottle,
        account: &str,
        address: &str,
        verdict: Verdict,
    ) -> Result<(), Refusal> {
        let attempt = t.begin(account, ip(address))?;
        t.finish(attempt, verdict);
        Ok(())
    }

    fn fail(t: &SignInThrottle, account: &str, address: &str) -> Result<(), Refusal> {
        attempt(t, account, address, Verdict::Wrong)
    }

    #[test]
    fn one_address_is_delayed_on_one_account_and_others_are_not() {
        let t = throttle();
        for _ in 0..3 {
            fail(&t, "a", "10.0.0.1").unwrap();
        }
        assert!(matches!(
            fail(&t, "a", "10.0.0.1"),
            Err(Refusal::AccountFromAddress(_))
        ));
        // The account's bucket (4) still has a token for another address.
        attempt(&t, "a", "10.0.0.2", Verdict::Correct).unwrap();
        // Another account from the attacker's address: three per-address tokens are left.
        fail(&t, "b", "10.0.0.1").unwrap();
    }

    #[test]
    fn many_addresses_drain_the_account_but_not_for_familiar_ones() {
        let t = throttle();
        attempt(&t, "a", "192.0.2.7", Verdict::Correct).unwrap();
        for i in 0..4 {
            fail(&t, "a", &format!("10.0.1.{i}")).unwrap();
        }
        assert!(matches!(
            fail(&t, "a", "10.0.1.99"),
            Err(Refusal::Account(_))
        ));
        // The owner at home is not charged to the drained bucket.
        attempt(&t, "a", "192.0.2.7", Verdict::Correct).unwrap();
        // Another account is untouched.
        fail(&t, "b", "10.0.1.99").unwrap();
    }

    #[test]
    fn correct_and_unchecked_attempts_give_their_charges_back() {
        let t = throttle();
        for verdict in [Verdict::NotChecked, Verdict::Correct] {
            for _ in 0..10 {
                attempt(&t, "a", "10.0.0.1", verdict).unwrap();
            }
        }
        fail(&t, "a", "10.0.0.1").unwrap();
    }

    #[test]
    fn concurrent_guesses_are_charged_before_they_are_checked() {
        let t = throttle();
        // Three attempts in flight at once: the free failures (2) plus the first delayed one.
        let held: Vec<Attempt> = (0..3)
            .map(|_| t.begin("a", ip("10.0.0.1")).unwrap())
            .collect();
        assert!(t.begin("a", ip("10.0.0.1")).is_err());
        for a in held {
            t.finish(a, Verdict::Wrong);
        }
    }

    #[test]
    fn a_flood_of_addresses_and_accounts_stays_bounded() {
        let t = throttle();
        for i in 0..(TRACKED_KEYS as u32 * 2 + 1000) {
            let address = std::net::Ipv4Addr::from(0x0A00_0000 + i).to_string();
            let _ = fail(&t, &format!("user_unknown{i}"), &address);
        }
        let state = t.state.lock();
        assert!(state.per_address.len() <= TRACKED_KEYS);
        assert!(state.per_account_address.len() <= TRACKED_KEYS);
        assert!(state.per_account.len() <= TRACKED_KEYS);
        drop(state);
        // The throttle still works for the newest keys.
        for _ in 0..3 {
            let _ = fail(&t, "victim", "10.9.9.9");
        }
        assert!(fail(&t, "victim", "10.9.9.9").is_err());
    }

    #[test]
    fn sign_ups_are_limited_per_reported_address_only() {
        let t = SignUpThrottle::new(RateLimit {
            burst: 2,
            refill_every: Duration::from_secs(3600),
        });
        assert!(t.admit(ip("10.0.0.1")).is_ok());
        assert!(t.admit(ip("10.0.0.1")).is_ok());
        assert!(matches!(t.admit(ip("10.0.0.1")), Err(Refusal::SignUps(_))));
        assert!(t.admit(ip("10.0.0.2")).is_ok());
        for _ in 0..10 {
            assert!(t.admit(None).is_ok());
        }
    }
}

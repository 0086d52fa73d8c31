//! The states the store keeps, as enums: each is written to and read from
//! its `text` column through [`as_str`](RunState::as_str) and
//! [`parse`](RunState::parse), the only places their names are spelled in
//! Rust (the `.sql` files spell them too, beside the columns' `CHECK`s).

use std::fmt;

/// A macro for a state enum with its column's names.
macro_rules! states {
    ($(#[$doc:meta])* $name:ident (else $fallback:ident) { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every state, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name the store keeps.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The state of a name the store keeps; `None` for one this
            /// release does not know.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The state a row holds. A schema written by a newer release
            /// is refused at start, and every state this release writes
            /// is one it knows, so a name it does not know can only come
            /// from a hand-written row: it reads as `$fallback`.
            pub(crate) fn from_store(text: &str) -> $name {
                $name::parse(text).unwrap_or($name::$fallback)
            }
        }

        /// Compares with the name the store keeps.
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        /// Compares with the name the store keeps.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

states! {
    /// How a run of a cluster's job ended, as its history keeps it (the
    /// `state` of `runs`), or that it is going on.
    RunState (else Failed) {
        /// Going on: its lease is held.
        Running = "running",
        /// It returned `Ok`.
        Succeeded = "succeeded",
        /// It returned an error.
        Failed = "failed",
        /// It panicked.
        Panicked = "panicked",
        /// It was cancelled by its host's stop.
        Cancelled = "cancelled",
        /// It was dropped at its host's shutdown deadline.
        Aborted = "aborted",
        /// Its instance stopped renewing its lease (killed, paused, cut
        /// off): the rescue recorded it as lost.
        Lost = "lost",
    }
}

states! {
    /// Where a durable item stands: waiting or running in `items`, or
    /// finished in `finished`.
    ItemState (else Dead) {
        /// Waiting for its run time and a free worker (its first attempt or
        /// a retry).
        Waiting = "waiting",
        /// Claimed and running on an instance, under a lease.
        Running = "running",
        /// Its handler succeeded.
        Succeeded = "succeeded",
        /// Dead-lettered: its attempts ran out, or its payload could not be
        /// read.
        Dead = "dead",
        /// Cancelled before or while it ran.
        Cancelled = "cancelled",
        /// A dead letter an operator discarded.
        Discarded = "discarded",
    }
}

/// A claim's verdict, as `sql/cluster/claim.sql` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClaimVerdict {
    Granted,
    Taken,
    Running,
    Paused,
    Unknown,
}

impl ClaimVerdict {
    pub(crate) fn parse(text: &str) -> Option<ClaimVerdict> {
        Some(match text {
            "granted" => ClaimVerdict::Granted,
            "taken" => ClaimVerdict::Taken,
            "running" => ClaimVerdict::Running,
            "paused" => ClaimVerdict::Paused,
            "unknown" => ClaimVerdict::Unknown,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_itself() {
        for &state in RunState::ALL {
            assert_eq!(RunState::parse(state.as_str()), Some(state));
        }
        for &state in ItemState::ALL {
            assert_eq!(ItemState::parse(state.as_str()), Some(state));
        }
        assert_eq!(RunState::parse("exploded"), None);
    }
}

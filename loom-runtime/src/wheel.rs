//! The per-loop hierarchical timer wheel.
//!
//! Six levels of 64 slots; a level-0 slot is one tick (one millisecond), a
//! level-`n` slot spans `64^n` ticks, so the wheel covers `64^6` ticks
//! (about 2.2 years) directly. A deadline further out is parked in the top
//! level and re-filed each time its slot comes round, so any `u64` deadline
//! works. Entries are intrusive ([`TimerEntry`] lives in the frame of the
//! fiber that sleeps), so arming and cancelling a timer never allocates.
//!
//! Ticks are relative to the loop's start-up instant; the conversion from
//! `Instant` rounds up, so a timer never fires early.

use std::cell::Cell;
use std::ptr::NonNull;

use crate::list::{List, container_of};
use crate::stack::control::FiberControl;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// Number of ticks the levels cover before deadlines must wrap round.
const SPAN_TICKS: u64 = 1 << (SLOT_BITS as u64 * LEVELS as u64);

/// One armed timer: a deadline and the fiber to wake when it passes.
#[derive(Debug)]
pub(crate) struct TimerEntry {
    link: crate::list::Link,
    deadline_tick: Cell<u64>,
    level: Cell<u8>,
    slot: Cell<u8>,
    fired: Cell<bool>,
    fiber: Option<NonNull<FiberControl>>,
}

impl TimerEntry {
    pub(crate) const fn new(fiber: Option<NonNull<FiberControl>>) -> Self {
        TimerEntry {
            link: crate::list::Link::new(),
            deadline_tick: Cell::new(0),
            level: Cell::new(0),
            slot: Cell::new(0),
            fired: Cell::new(false),
            fiber,
        }
    }

    /// Whether the wheel has fired this entry (it is then no longer linked).
    pub(crate) fn fired(&self) -> bool {
        self.fired.get()
    }

    /// The fiber this entry wakes.
    pub(crate) fn fiber(&self) -> Option<NonNull<FiberControl>> {
        self.fiber
    }

    #[cfg(test)]
    pub(crate) fn deadline_tick(&self) -> u64 {
        self.deadline_tick.get()
    }
}

#[derive(Debug)]
struct Level {
    /// Bit `i` is set when `slots[i]` is non-empty.
    occupied: Cell<u64>,
    slots: [List; SLOTS],
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct TimerWheel {
    levels: [Level; LEVELS],
    /// Every deadline up to and including this tick has been fired.
    elapsed: Cell<u64>,
    armed: Cell<usize>,
}

/// Where the next occupied slot is and the tick at which it is due.
#[derive(Clone, Copy, Debug)]
struct Expiration {
    level: usize,
    slot: usize,
    tick: u64,
}

impl TimerWheel {
    pub(crate) fn new() -> Self {
        TimerWheel {
            levels: std::array::from_fn(|_| Level {
                occupied: Cell::new(0),
                slots: std::array::from_fn(|_| List::new()),
            }),
            elapsed: Cell::new(0),
            armed: Cell::new(0),
        }
    }

    /// Number of armed entries.
    pub(crate) fn len(&self) -> usize {
        self.armed.get()
    }

    /// Arms `entry` for `deadline_tick`. Returns `false`, without linking it,
    /// when that tick has already been processed (the caller treats the timer
    /// as expired).
    ///
    /// # Safety
    /// `entry` stays at its address until it has fired or been passed to
    /// [`TimerWheel::cancel`].
    pub(crate) unsafe fn arm(&self, entry: &TimerEntry, deadline_tick: u64) -> bool {
        if deadline_tick <= self.elapsed.get() {
            return false;
        }
        entry.deadline_tick.set(deadline_tick);
        entry.fired.set(false);
        // SAFETY: forwarded from this function's contract.
        unsafe { self.file(entry) };
        self.armed.set(self.armed.get() + 1);
        true
    }

    /// Disarms `entry` if it is still armed; a fired entry is left alone.
    ///
    /// # Safety
    /// `entry` was armed on *this* wheel (or never armed at all).
    pub(crate) unsafe fn cancel(&self, entry: &TimerEntry) {
        if entry.link.is_linked() {
            // SAFETY: a linked entry of this wheel is in the slot recorded in it.
            unsafe { self.unfile(entry) };
            self.armed.set(self.armed.get() - 1);
        }
    }

    /// The earliest tick at which [`TimerWheel::fire_due`] has work, if any
    /// timer is armed. For deadlines beyond the wheel's span this may be
    /// earlier than the deadline itself (the entry is re-filed then).
    pub(crate) fn next_tick(&self) -> Option<u64> {
        self.next_expiration().map(|e| e.tick)
    }

    /// Fires every entry whose deadline is at or before `now_tick`, in
    /// deadline order (entries sharing a tick fire in arming order), passing
    /// each to `on_fire` after it has been unlinked.
    pub(crate) fn fire_due(&self, now_tick: u64, mut on_fire: impl FnMut(&TimerEntry)) {
        while let Some(exp) = self.next_expiration() {
            if exp.tick > now_tick {
                break;
            }
            self.elapsed.set(exp.tick);
            let level = &self.levels[exp.level];
            let due = level.slots[exp.slot].take_all();
            level.occupied.set(level.occupied.get() & !(1 << exp.slot));
            loop {
                let link = due.pop_front();
                if link.is_null() {
                    break;
                }
                // SAFETY: every link in a wheel slot is the `link` field of an
                // armed TimerEntry, alive by `arm`'s contract.
                let entry = unsafe { &*container_of!(link, TimerEntry, link) };
                if entry.deadline_tick.get() <= exp.tick {
                    self.armed.set(self.armed.get() - 1);
                    entry.fired.set(true);
                    on_fire(entry);
                } else {
                    // Cascade towards level 0; the deadline is still ahead.
                    // SAFETY: the entry is alive (arm's contract) and was just
                    // unlinked from `due`.
                    unsafe { self.file(entry) };
                }
            }
        }
        if now_tick > self.elapsed.get() {
            self.elapsed.set(now_tick);
        }
    }

    /// # Safety
    /// `entry` is alive, unlinked, and stays put while linked.
    unsafe fn file(&self, entry: &TimerEntry) {
        let deadline = entry.deadline_tick.get();
        let level = level_for(self.elapsed.get(), deadline);
        let slot = ((deadline >> (SLOT_BITS as usize * level)) as usize) & (SLOTS - 1);
        entry.level.set(level as u8);
        entry.slot.set(slot as u8);
        let lvl = &self.levels[level];
        // SAFETY: forwarded from this function's contract.
        unsafe { lvl.slots[slot].push_back(&entry.link) };
        lvl.occupied.set(lvl.occupied.get() | (1 << slot));
    }

    /// # Safety
    /// `entry` is linked in this wheel.
    unsafe fn unfile(&self, entry: &TimerEntry) {
        let lvl = &self.levels[entry.level.get() as usize];
        let slot = entry.slot.get() as usize;
        // SAFETY: a linked entry sits in the slot recorded when it was filed.
        unsafe { lvl.slots[slot].remove(&entry.link) };
        if lvl.slots[slot].is_empty() {
            lvl.occupied.set(lvl.occupied.get() & !(1 << slot));
        }
    }

    fn next_expiration(&self) -> Option<Expiration> {
        let elapsed = self.elapsed.get();
        // A lower level only ever holds deadlines inside the current slot of
        // the level above, so the first non-empty level has the earliest one.
        for (index, level) in self.levels.iter().enumerate() {
            let occupied = level.occupied.get();
            if occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS as usize * index;
            let slot_ticks = 1u64 << shift;
            let current = ((elapsed >> shift) as usize) & (SLOTS - 1);
            // The current slot has been processed already; an entry filed
            // there is a full revolution away (only far-future deadlines).
            let ahead = occupied.rotate_right(current as u32) & !1;
            let distance = if ahead == 0 {
                SLOTS as u64
            } else {
                ahead.trailing_zeros() as u64
            };
            let slot_start = elapsed & !(slot_ticks - 1);
            let tick = slot_start.saturating_add(distance * slot_ticks);
            let slot = (current + distance as usize) & (SLOTS - 1);
            return Some(Expiration {
                level: index,
                slot,
                tick,
            });
        }
        None
    }
}

/// The level whose slot width matches how far `deadline` is from `elapsed`:
/// the highest 6-bit group in which the two differ.
fn level_for(elapsed: u64, deadline: u64) -> usize {
    let differing = ((elapsed ^ deadline) | (SLOTS as u64 - 1)).min(SPAN_TICKS - 1);
    let top_bit = 63 - differing.leading_zeros() as usize;
    top_bit / SLOT_BITS as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire_all(wheel: &TimerWheel, now: u64) -> Vec<(u64, u64)> {
        let mut fired = Vec::new();
        wheel.fire_due(now, |e| fired.push((e.deadline_tick(), now)));
        fired
    }

    #[test]
    fn fires_in_deadline_order_even_when_polled_late() {
        let wheel = TimerWheel::new();
        let deadlines = [
            5u64,
            3,
            900,
            64,
            63,
            4096,
            65,
            1,
            262_144,
            5,
            70_000,
            2,
            100_000_000,
        ];
        let entries: Vec<TimerEntry> = deadlines.iter().map(|_| TimerEntry::new(None)).collect();
        for (entry, &tick) in entries.iter().zip(&deadlines) {
            // SAFETY: `entries` outlives the wheel's use of it and is not moved.
            assert!(unsafe { wheel.arm(entry, tick) });
        }
        assert_eq!(wheel.len(), deadlines.len());
        let mut order = Vec::new();
        wheel.fire_due(u64::MAX / 2, |e| order.push(e.deadline_tick()));
        let mut sorted = deadlines.to_vec();
        sorted.sort();
        assert_eq!(order, sorted);
        assert_eq!(wheel.len(), 0);
        assert!(entries.iter().all(|e| e.fired()));
    }

    #[test]
    fn never_fires_early_when_polled_every_tick() {
        let wheel = TimerWheel::new();
        let deadlines: Vec<u64> = (0..200u64).map(|i| 1 + (i * 7919) % 5000).collect();
        let entries: Vec<TimerEntry> = deadlines.iter().map(|_| TimerEntry::new(None)).collect();
        for (entry, &tick) in entries.iter().zip(&deadlines) {
            // SAFETY: `entries` outlives the wheel's use of it.
            assert!(unsafe { wheel.arm(entry, tick) });
        }
        let mut fired = Vec::new();
        for now in 0..=5000 {
            fired.extend(fire_all(&wheel, now));
        }
        assert_eq!(fired.len(), deadlines.len());
        for (deadline, at) in &fired {
            assert_eq!(
                deadline, at,
                "a timer fired at tick {at}, its deadline was {deadline}"
            );
        }
        assert!(fired.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn same_tick_fires_in_arming_order_and_cancel_unlinks() {
        let wheel = TimerWheel::new();
        let entries: Vec<TimerEntry> = (0..4).map(|_| TimerEntry::new(None)).collect();
        for e in &entries {
            // SAFETY: `entries` outlives the wheel's use of it.
            assert!(unsafe { wheel.arm(e, 10) });
        }
        // SAFETY: entries[1] was armed on this wheel.
        unsafe { wheel.cancel(&entries[1]) };
        assert_eq!(wheel.len(), 3);
        let mut order = Vec::new();
        wheel.fire_due(10, |e| order.push(e as *const TimerEntry));
        let expected: Vec<*const TimerEntry> =
            [0, 2, 3].iter().map(|&i| &entries[i] as *const _).collect();
        assert_eq!(order, expected);
        assert!(!entries[1].fired());
    }

    #[test]
    fn past_deadlines_are_refused() {
        let wheel = TimerWheel::new();
        wheel.fire_due(100, |_| unreachable!());
        let entry = TimerEntry::new(None);
        // SAFETY: `entry` outlives the wheel's use of it.
        assert!(!unsafe { wheel.arm(&entry, 100) });
        // SAFETY: as above.
        assert!(unsafe { wheel.arm(&entry, 101) });
        assert_eq!(wheel.next_tick(), Some(101));
    }

    #[test]
    fn far_future_deadlines_wait_their_turn() {
        let wheel = TimerWheel::new();
        let beyond_span = SPAN_TICKS * 3 + 12_345;
        let far = TimerEntry::new(None);
        let never = TimerEntry::new(None);
        let soon = TimerEntry::new(None);
        // SAFETY: the entries outlive the wheel's use of them.
        unsafe {
            assert!(wheel.arm(&far, beyond_span));
            assert!(wheel.arm(&never, u64::MAX));
            assert!(wheel.arm(&soon, 7));
        }
        assert_eq!(wheel.next_tick(), Some(7));
        assert_eq!(fire_all(&wheel, 7), [(7, 7)]);
        // Walk time forward in big strides; the far entries may be re-filed
        // on the way but must not fire before their deadline.
        let mut now = 7;
        while now < beyond_span - 1 {
            let next = wheel.next_tick().expect("two timers are still armed");
            assert!(next > now, "the wheel must always make progress");
            now = next.min(beyond_span - 1);
            assert!(fire_all(&wheel, now).is_empty(), "fired early at {now}");
        }
        assert_eq!(fire_all(&wheel, beyond_span), [(beyond_span, beyond_span)]);
        assert!(!never.fired());
        assert_eq!(wheel.len(), 1);
        // SAFETY: `never` was armed on this wheel.
        unsafe { wheel.cancel(&never) };
        assert_eq!(wheel.next_tick(), None);
    }

    #[test]
    fn level_selection() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(60, 70), 1);
        assert_eq!(level_for(0, 1 << 35), 5);
        assert_eq!(level_for(0, u64::MAX), 5);
    }
}

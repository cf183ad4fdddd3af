//! An intrusive doubly-linked list.
//!
//! The run queue, the list of live fibers, stack-pool waiters and every
//! timer-wheel slot are lists of [`Link`]s embedded in structures that live
//! on fiber stacks or in fiber control blocks, so linking and unlinking never
//! allocates. All state sits in `Cell`s: the owning event loop is
//! single-threaded and only ever hands out shared references.
//!
//! The price of intrusiveness is the usual one: a linked [`Link`] must stay
//! at the same address and must be unlinked before its memory is reused.
//! That is the caller's promise at every `unsafe` call below.

use std::cell::Cell;
use std::ptr;

/// The part of a list element that the list itself owns.
#[derive(Debug)]
pub(crate) struct Link {
    prev: Cell<*const Link>,
    next: Cell<*const Link>,
    linked: Cell<bool>,
}

impl Link {
    pub(crate) const fn new() -> Self {
        Link {
            prev: Cell::new(ptr::null()),
            next: Cell::new(ptr::null()),
            linked: Cell::new(false),
        }
    }

    /// Whether this link is currently in some list.
    pub(crate) fn is_linked(&self) -> bool {
        self.linked.get()
    }
}

/// A FIFO of [`Link`]s: push at the back, pop from the front, unlink from
/// anywhere in O(1).
#[derive(Debug)]
pub(crate) struct List {
    head: Cell<*const Link>,
    tail: Cell<*const Link>,
    len: Cell<usize>,
}

impl List {
    pub(crate) const fn new() -> Self {
        List {
            head: Cell::new(ptr::null()),
            tail: Cell::new(ptr::null()),
            len: Cell::new(0),
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.get().is_null()
    }

    pub(crate) fn len(&self) -> usize {
        self.len.get()
    }

    /// Appends `link`.
    ///
    /// # Safety
    /// `link` is not in any list, and stays at its address until it has been
    /// removed again (by [`List::pop_front`], [`List::remove`] or
    /// [`List::take_all`]).
    #[inline]
    pub(crate) unsafe fn push_back(&self, link: &Link) {
        debug_assert!(!link.linked.get(), "link is already in a list");
        link.linked.set(true);
        link.next.set(ptr::null());
        link.prev.set(self.tail.get());
        let tail = self.tail.get();
        if tail.is_null() {
            self.head.set(link);
        } else {
            // SAFETY: `tail` is linked in this list, so by the push_back
            // contract it is still alive at its address.
            unsafe { (*tail).next.set(link) };
        }
        self.tail.set(link);
        self.len.set(self.len.get() + 1);
    }

    /// Removes and returns the first link, or null when empty.
    #[inline]
    pub(crate) fn pop_front(&self) -> *const Link {
        let head = self.head.get();
        if !head.is_null() {
            // SAFETY: `head` is linked in this list and therefore alive (the
            // push_back contract); removing the list's own head is always
            // valid.
            unsafe { self.remove(&*head) };
        }
        head
    }

    /// Unlinks `link` from this list.
    ///
    /// # Safety
    /// `link` is in *this* list (not another one).
    #[inline]
    pub(crate) unsafe fn remove(&self, link: &Link) {
        debug_assert!(link.linked.get(), "unlinking a link that is not in a list");
        let prev = link.prev.get();
        let next = link.next.get();
        if prev.is_null() {
            self.head.set(next);
        } else {
            // SAFETY: neighbours of a linked element are linked in the same
            // list and therefore alive.
            unsafe { (*prev).next.set(next) };
        }
        if next.is_null() {
            self.tail.set(prev);
        } else {
            // SAFETY: as above.
            unsafe { (*next).prev.set(prev) };
        }
        link.prev.set(ptr::null());
        link.next.set(ptr::null());
        link.linked.set(false);
        self.len.set(self.len.get() - 1);
    }

    /// Moves every element into a new list, leaving `self` empty.
    pub(crate) fn take_all(&self) -> List {
        List {
            head: Cell::new(self.head.replace(ptr::null())),
            tail: Cell::new(self.tail.replace(ptr::null())),
            len: Cell::new(self.len.replace(0)),
        }
    }

    /// Calls `f` on every element, front to back. `f` must not modify this
    /// list.
    pub(crate) fn for_each(&self, mut f: impl FnMut(*const Link)) {
        let mut cursor = self.head.get();
        while !cursor.is_null() {
            // SAFETY: `cursor` is linked in this list and therefore alive;
            // `f` does not unlink it (documented precondition).
            let next = unsafe { (*cursor).next.get() };
            f(cursor);
            cursor = next;
        }
    }
}

/// Recovers a pointer to the structure containing a [`Link`] field.
macro_rules! container_of {
    ($link:expr, $Container:ty, $field:ident) => {
        ($link as *const u8).wrapping_sub(std::mem::offset_of!($Container, $field))
            as *const $Container
    };
}
pub(crate) use container_of;

#[cfg(test)]
mod tests {
    use super::*;

    struct Item {
        link: Link,
        value: u32,
    }

    fn values(list: &List) -> Vec<u32> {
        let mut out = Vec::new();
        list.for_each(|l| {
            // SAFETY: every link in the test lists is the `link` field of an
            // `Item` that outlives the list.
            out.push(unsafe { (*container_of!(l, Item, link)).value });
        });
        out
    }

    #[test]
    fn fifo_and_unlink_from_the_middle() {
        let items: Vec<Item> = (0..5)
            .map(|value| Item {
                link: Link::new(),
                value,
            })
            .collect();
        let list = List::new();
        for item in &items {
            // SAFETY: `items` outlives `list` and is not moved.
            unsafe { list.push_back(&item.link) };
        }
        assert_eq!(values(&list), [0, 1, 2, 3, 4]);
        // SAFETY: items[2] is in `list`.
        unsafe { list.remove(&items[2].link) };
        assert!(!items[2].link.is_linked());
        assert_eq!(values(&list), [0, 1, 3, 4]);
        let first = list.pop_front();
        assert_eq!(first, &items[0].link as *const Link);
        let rest = list.take_all();
        assert!(list.is_empty());
        assert_eq!(rest.len(), 3);
        assert_eq!(values(&rest), [1, 3, 4]);
        while !rest.pop_front().is_null() {}
        assert!(items.iter().all(|i| !i.link.is_linked()));
    }
}

//! The writer's queue of jobs, shared by the writer thread and its flush watchdog (which takes
//! the writer's place at the queue when sled stops answering), so neither owns the other.

use std::sync::{Arc, Mutex, PoisonError, mpsc};

use super::{StoreError, Tx};

/// One queued write: runs inside the writer thread and returns how to answer once the group's
/// flush is done (with the flush's outcome). Given no transaction, it does not run and its
/// answer is the (failed) outcome alone.
pub(super) type Job = Box<dyn FnOnce(Option<&mut Tx<'_>>) -> Reply + Send>;
pub(super) type Reply = Box<dyn FnOnce(&Result<(), StoreError>) + Send>;
/// The writer's queue, shared with its watchdog (`watchdog::Watchdog`).
pub(super) type Queue = Arc<Mutex<mpsc::Receiver<Job>>>;

/// Locks the queue; a thread that panicked holding it left nothing half-done in a receiver.
pub(super) fn lock_queue(queue: &Queue) -> std::sync::MutexGuard<'_, mpsc::Receiver<Job>> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

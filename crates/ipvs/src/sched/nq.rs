//! Placeholder: being written.

use super::Scheduler;

pub fn new(_flags: u32) -> Box<dyn Scheduler> {
    unimplemented!("scheduler nq")
}

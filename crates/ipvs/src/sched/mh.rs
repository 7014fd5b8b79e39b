//! Placeholder: being written.

use super::Scheduler;
use crate::command::IpvsError;

pub fn new(_flags: u32) -> Box<dyn Scheduler> {
    unimplemented!("scheduler mh")
}

pub fn check_dest_count(_n: usize) -> Result<(), IpvsError> {
    Ok(())
}

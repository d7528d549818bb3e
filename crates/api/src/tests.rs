//! Tests of the conversions, one file per direction: data first (one instance of every
//! command and every event), then the cases that must fail and the field they must name.

mod commands;
mod events;
mod fixtures;
mod report;
mod status;

//! The gateway's integration tests, in one test binary (one link, one process): each module is one former test file.

mod support;

mod deadlines;
mod gateway;
mod hostile;
mod limits;
mod streaming;

//! The hostpath provisioner's pieces that need no API server: class
//! parameters, the path template, and the root directory.
pub mod fsroot;
pub mod params;
pub mod pattern;
pub mod quota;

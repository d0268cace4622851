//! detectors (being written).

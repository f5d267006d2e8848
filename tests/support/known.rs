//! Known differences between nginx-rs and nginx in the differential tests, checked strictly.
//!
//! Each differential test lists the cases where nginx-rs is known to differ, with a one-line
//! reason. The test then fails on any difference not in the list (a regression or a new bug) and
//! on any listed case that no longer differs (fixed: take it off the list), and prints the known
//! ones, so the suite stays green while every gap stays visible and precise.
#![allow(dead_code)]

/// A case that differs, and a description of how (for the failure message).
pub struct Difference {
    pub case: String,
    pub detail: String,
}

/// Panics unless the cases in `found` are exactly those in `known` (case name, reason).
pub fn assert_only_known(found: &[Difference], known: &[(&str, &str)], extra: &str) {
    let is_known = |case: &str| known.iter().any(|(k, _)| *k == case);
    for d in found.iter().filter(|d| is_known(&d.case)) {
        let why = known
            .iter()
            .find(|(k, _)| *k == d.case)
            .map_or("", |(_, w)| *w);
        eprintln!("KNOWN DIFFERENCE {}: {why}", d.case);
    }
    let new: Vec<String> = found
        .iter()
        .filter(|d| !is_known(&d.case))
        .map(|d| d.detail.clone())
        .collect();
    let fixed: Vec<&str> = known
        .iter()
        .filter(|(k, _)| !found.iter().any(|d| d.case == *k))
        .map(|(k, _)| *k)
        .collect();
    assert!(
        new.is_empty() && fixed.is_empty(),
        "{} new difference(s):\n{}\n{} listed difference(s) no longer differ (take them off \
         the KNOWN_DIFFERENCES list): {:?}\n{extra}",
        new.len(),
        new.join("\n"),
        fixed.len(),
        fixed
    );
}

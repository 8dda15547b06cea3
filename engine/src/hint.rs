//! Hint files: a compact index of a sealed segment, so `open` need not read every value.
//! (Written and read in a later change; recovery scans segments until then.)

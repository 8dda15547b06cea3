//! flin-server (being laid out).

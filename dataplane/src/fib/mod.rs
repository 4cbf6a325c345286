//! Forwarding information bases: longest-prefix match from an address to a leaf (a load-balance index).

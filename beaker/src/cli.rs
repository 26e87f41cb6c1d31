//! TODO(owner): see docs/CONTRACTS.md

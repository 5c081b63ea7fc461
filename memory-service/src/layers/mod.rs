//! Cross-cutting concerns as tower layers, stacked once in [`crate::serve`].

pub mod auth;

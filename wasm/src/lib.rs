//! WASM bindings (see issue 8).

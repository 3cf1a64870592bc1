//! The WIT contract (`sdk/wit/drover.wit`) bound for the host side. This is the only place the
//! engine runs `bindgen!`; every other module uses the types re-exported here.

#![expect(
    missing_docs,
    reason = "bindgen! generates undocumented items: modules, linker functions, WIT items without a doc"
)]

wasmtime::component::bindgen!({
    path: "../sdk/wit",
    world: "step",
    imports: { default: async | trappable },
    exports: { default: async },
});

/// The contract version this host speaks, as in the WIT package name.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The WIT package the contract lives in.
pub const CONTRACT_PACKAGE: &str = "drover:plugin";

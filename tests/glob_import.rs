//! `use mmf::*;` must not shadow a crate of the standard library's: its `core` module once
//! did, and `core::time::Duration` stopped compiling beside it.

use mmf::*;

#[test]
fn a_glob_import_of_the_facade_leaves_core_paths_alone() {
    let d: core::time::Duration = core::time::Duration::from_millis(1);
    let name = format!("glob-import-{}", std::process::id());
    let ch = Channel::create(&name, 64).unwrap();
    assert_eq!(ch.wait_for_change(0, d), None);
    let err = Channel::create(&name, 64).unwrap_err();
    assert!(matches!(err, channel::Error::AlreadyExists { .. }), "{err}");
    Channel::remove(&name).unwrap();
}

//! `docs/RULES.md` is generated from the core's tables: this test fails when the file and the
//! code disagree. `METERGATE_BLESS=1 cargo test -p metergate-core --test reference` rewrites it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn docs_rules_md_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/RULES.md");
    let want = metergate_core::reference::rules_markdown();
    if std::env::var("METERGATE_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
        panic!(
            "docs/RULES.md is out of date (first difference at line {}:\n  file: {:?}\n  code: {:?}).\nRegenerate it with: METERGATE_BLESS=1 cargo test -p metergate-core --test reference",
            first + 1,
            got.lines().nth(first).unwrap_or(""),
            want.lines().nth(first).unwrap_or("")
        );
    }
}

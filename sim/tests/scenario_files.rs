//! Scenario files load, run, and fail loudly when malformed.

use ballast_sim::runner::{RunOptions, run};
use ballast_sim::scenario::find;
use ballast_sim::scenario_file::parse;

/// Every file of the suite loads (the suite runs them: `ballast-scenarios`).
#[test]
fn every_scenario_file_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/suite");
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    assert!(files.len() >= 10);
    for path in files {
        find(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn the_standard_file_matches_the_builtin_scenario() {
    let file = find(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/suite/standard-as-file.toml"
    ))
    .unwrap();
    let builtin = find("standard").unwrap();
    let a = run(&file, 5, RunOptions::default());
    let b = run(&builtin, 5, RunOptions::default());
    assert_eq!(
        a.trace_hash, b.trace_hash,
        "same scenario, same seed, same run"
    );
}

fn error(text: &str) -> String {
    parse("bad.toml", text).unwrap_err()
}

#[test]
fn malformed_files_name_the_line_and_the_field() {
    let base = "description = \"x\"\nvalidators = 4\nduration_ms = 5000\n";
    let e = error(&format!("{base}losss = 0.1\n"));
    assert!(
        e.contains("bad.toml") && e.contains("line 4") && e.contains("losss"),
        "{e}"
    );
    let e = error(&format!("{base}loss = 1.5\n"));
    assert!(e.contains("line 4") && e.contains("`loss`"), "{e}");
    let e = error(&format!(
        "{base}\n[[crash]]\nvalidator = 1\nat_ms = 700\nrestart_ms = 500\n"
    ));
    assert!(
        e.contains("line 5") && e.contains("crash.restart_ms"),
        "{e}"
    );
    let e = error(&format!(
        "{base}\n[[byzantine]]\nvalidator = 1\nrole = \"liar\"\n"
    ));
    assert!(
        e.contains("byzantine.role") && e.contains("equivocating-leader"),
        "{e}"
    );
    let e = error(&format!(
        "{base}\n[[partition]]\nstart_ms = 1\nheal_ms = 2\ngroups = [[0, 9]]\n"
    ));
    assert!(
        e.contains("partition.groups") && e.contains("validator 9"),
        "{e}"
    );
    let e = error(&format!(
        "{base}certificate_crashes = {{ from_ms = 900, to_ms = 400, down_ms = 100 }}\n"
    ));
    assert!(
        e.contains("line 4") && e.contains("`certificate_crashes`"),
        "{e}"
    );
    let e = error("description = \"x\"\nvalidators = 4\n");
    assert!(e.contains("duration_ms"), "{e}");
    let e = error(&format!("{base}duration_ms = 3\n"));
    assert!(e.contains("line 4") && e.contains("duration_ms"), "{e}");
}

/// `show` and `shrink` write scenarios out as files: reading one back must
/// give the same scenario, for every built-in and for drawn swarm seeds.
#[test]
fn written_scenarios_read_back_the_same() {
    use ballast_sim::scenario_file::{parse, to_toml};
    let swarm = ballast_sim::scenario::find("swarm").unwrap();
    let drawn = (0..50).map(|seed| swarm.for_seed(seed));
    let builtins = ballast_sim::scenario::builtin()
        .into_iter()
        .filter(|s| !s.swarm);
    for scenario in builtins.chain(drawn) {
        let text = to_toml(&scenario);
        let back = parse("written.toml", &text)
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", scenario.name));
        assert_eq!(to_toml(&back), text, "{}", scenario.name);
        assert_eq!(back.stakes, scenario.stakes);
        assert_eq!(back.partitions, scenario.partitions);
        assert_eq!(back.byzantine, scenario.byzantine);
    }
}

//! `sealroom bench` measures real work: a short run of each mode completes requests and none of
//! them fails (a benchmark timing error responses would report nonsense).

use std::process::Command;

fn run_bench(mode: &[&str]) -> serde_json::Value {
    let directory = tempfile::tempdir().unwrap();
    let output_file = directory.path().join("bench.json");
    let mut arguments = vec!["bench", "--users", "3", "--clients", "2", "--seconds", "1"];
    arguments.extend_from_slice(mode);
    let output = Command::new(env!("CARGO_BIN_EXE_sealroom"))
        .args(&arguments)
        .arg("--json")
        .arg(&output_file)
        .current_dir(directory.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "bench {mode:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&std::fs::read(&output_file).unwrap()).unwrap()
}

fn assert_worked(summary: &serde_json::Value, what: &str) {
    assert!(summary["requests"].as_u64().unwrap() > 0, "{what}: no request completed");
    assert_eq!(summary["errors"].as_u64().unwrap(), 0, "{what}: requests failed");
}

#[test]
fn the_mixed_load_and_the_proxy_benchmark_measure_successful_requests() {
    let mixed = run_bench(&[]);
    assert_worked(&mixed["sealroom"]["total"], "mixed load");
    assert_worked(&mixed["bare_axum"]["total"], "bare baseline");
    assert!(mixed["throughput_ratio"].as_f64().unwrap() > 0.0);

    let proxy = run_bench(&["--proxy"]);
    let phases = proxy["phases"].as_object().unwrap();
    assert_eq!(phases.len(), 8);
    for (phase, summary) in phases {
        assert_worked(summary, phase);
    }
    assert_eq!(proxy["added"].as_object().unwrap().len(), 6);
}

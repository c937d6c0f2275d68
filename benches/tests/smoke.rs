//! The harness still works end to end: a `--smoke` run (tiny samples) of the latency,
//! breakdown, publish-cost and throughput sections across real child processes (and two
//! threads), and its JSON.

use std::process::Command;

#[test]
fn smoke_run_measures_every_default_transport() {
    let json = std::env::temp_dir().join(format!("mmf-bench-smoke-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_mmf-bench"))
        .args([
            "--smoke",
            "--only",
            "latency,breakdown,publish,throughput",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run mmf-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mmf-bench failed\n{stdout}\n{stderr}");
    assert!(!stderr.contains("failed"), "a run failed:\n{stderr}");
    let text = std::fs::read_to_string(&json).expect("json written");
    let _ = std::fs::remove_file(&json);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("valid json");
    assert!(doc["machine"]["cpu_model"].is_string());
    // The placement probes: from the start to the end, one before every latency run (the first
    // size's first F among them), each figure a positive one where there is a figure.
    let probes = doc["placement"].as_array().expect("placement probes");
    let at: Vec<&str> = probes.iter().filter_map(|p| p["at"].as_str()).collect();
    assert_eq!(at.first(), Some(&"start"), "{at:?}");
    assert_eq!(at.last(), Some(&"end"), "{at:?}");
    assert!(at.contains(&"64 B round 1 floor"), "{at:?}");
    assert!(at.contains(&"after 4 KiB"), "{at:?}");
    for p in probes {
        if let Some(rt) = p.get("rt_ns") {
            assert!(rt.as_f64().is_some_and(|x| x > 0.0), "{p}");
        }
    }
    let results = doc["results"].as_array().expect("results");
    let has = |transport: &str, case: &str, field: &str| {
        results
            .iter()
            .any(|r| r["transport"] == transport && r["case"] == case && r[field].is_number())
    };
    for t in [
        "floor-line",
        "floor",
        "floor-2buf",
        "floor-validated",
        "mmf",
        "mmf-wait",
        "mmf-async",
        "mmf-stream",
        "mmf-follow",
        "futex",
        "pipe",
        "uds",
    ] {
        assert!(
            has(t, "round-trip", "p50_ns"),
            "no latency for {t}:\n{stdout}"
        );
    }
    for t in ["mmf", "seqlock-naive"] {
        assert!(
            has(t, "writer alone", "writes_per_s"),
            "no writer-only run for {t}"
        );
        assert!(
            has(t, "writer+1 reader", "reader_snapshots_per_s"),
            "no reader run for {t}"
        );
    }
    // The reader-progress ratio uses F measured within the throughput rounds themselves; it is
    // left out where that F disagrees with the latency section's by too much (a disturbed
    // host, which tiny smoke samples on a loaded machine sometimes are), the F never.
    assert!(
        has("mmf", "writer+1 reader", "floor_rt_ns"),
        "no F measured for mmf's reader:\n{stdout}"
    );
    let row = results
        .iter()
        .find(|r| r["transport"] == "mmf" && r["case"] == "writer+1 reader")
        .expect("a reader row");
    assert!(
        row["reader_rate_vs_floor"].is_number() || stdout.contains("latency section's: not judged"),
        "no x 1/F for mmf's reader, and no bar saying why:\n{stdout}"
    );
    // The publish cost, timed in this process (instructions too where valgrind is installed).
    for t in ["mmf", "mmf-without-waiter-check"] {
        assert!(
            has(t, "publish, nobody waiting", "p50_ns"),
            "no publish cost for {t}:\n{stdout}"
        );
    }
    // Back-to-back round trips: every block of a run times 192 round trips one by one, then a
    // batch of 64 as a whole, so a run that timed more than 192 one by one timed a batch. In a
    // smoke run's 20 ms that is many blocks, unless another process holds a spinner's CPU (a
    // round trip then waits for a scheduler tick: 8-24 ms with two busy loops beside the test),
    // and the table rightly shows no figure.
    let blocks = |r: &serde_json::Value| r["samples"].as_u64().is_some_and(|n| n > 192);
    let row = |transport: &str, bytes: &serde_json::Value| {
        results.iter().find(|r| {
            r["transport"] == transport && r["case"] == "round-trip" && r["payload_bytes"] == *bytes
        })
    };
    let mut held = 0;
    for r in results.iter().filter(|r| r["case"] == "round-trip") {
        let t = r["transport"].as_str().unwrap_or_default();
        assert!(r["samples"].is_u64() || r["runs"] == 0, "{r}");
        if !["floor", "mmf"].contains(&t) || !blocks(r) {
            continue;
        }
        held += 1;
        assert!(
            r["b2b_ns"].is_number(),
            "no back-to-back figure for {t} at {}:\n{stdout}",
            r["payload_bytes"]
        );
        if row("floor", &r["payload_bytes"]).is_some_and(blocks) {
            assert!(
                r["x_floor_b2b_paired"].is_number(),
                "no back-to-back ratio for {t} at {}:\n{stdout}",
                r["payload_bytes"]
            );
        }
    }
    if held == 0 {
        eprintln!("no spinning transport had its CPUs: no back-to-back figure was expected");
    }
    assert_eq!(doc["machine"]["mode"], "smoke");
    assert!(stdout.contains("The issue's bars"), "{stdout}");
    // Without the spinning peers (a default build), "faster than every peer" is not judged:
    // the blocking peers alone would let it pass.
    if !cfg!(feature = "seed-peers") || !cfg!(feature = "iceoryx2") {
        assert!(
            stdout.contains("every peer (< 1)") && stdout.contains("not judged, peers missing"),
            "{stdout}"
        );
        assert!(
            !stdout.contains("[ok]   4 KiB RT: mmf / every peer"),
            "{stdout}"
        );
        assert!(
            !stdout.contains("[ok]   4 KiB RT back-to-back: mmf / every peer"),
            "{stdout}"
        );
    }
    // The breakdown needs two CPUs; where there are two, both transports have every segment.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        for t in ["floor", "mmf"] {
            let s = &doc["breakdown"][t];
            for f in [
                "a_send_ns",
                "to_b_ns",
                "b_read_ns",
                "b_send_ns",
                "to_a_ns",
                "a_read_ns",
            ] {
                assert!(
                    s[f].is_number(),
                    "no {f} for {t} in the breakdown:\n{stdout}"
                );
            }
            assert!(s["rt_ns"].as_f64().is_some_and(|rt| rt > 0.0), "{stdout}");
        }
    }
}

/// Names it does not know are usage errors (exit 2) before anything runs, and the sweep of an
/// earlier run's leftovers removes only the channels a process of that pid made: a user's own
/// `bench-2024-q3` was removed by every run, a mistyped command line's too (a review's).
#[test]
fn usage_errors_and_the_sweep_leave_users_channels_alone() {
    let dir = std::env::temp_dir().join(format!("mmf-bench-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bench = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mmf-bench"))
            .args(args)
            .env("MMF_SHM_DIR", &dir)
            .output()
            .expect("run mmf-bench")
    };
    let location = |name: &str| mmf_core::Location::File(dir.join(format!("mmf.{name}")));
    // A user's channel under a name like the harness's, with the pid of a process that is gone.
    let mut gone = Command::new("true").spawn().unwrap();
    let name = format!("bench-{}-q3", gone.id());
    gone.wait().unwrap();
    let users = mmf_core::Channel::create(location(&name), 64).unwrap();
    users
        .publish_raw(mmf_core::Tag::TEXT, b"user data")
        .unwrap();
    drop(users);
    for args in [
        &["--only", "bogus"][..],
        &["--transports", "bogus"],
        &["--sizes", ","],
        &["--only", ""],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "nothing ran: {out:?}");
    }
    let out = bench(&["--smoke", "--only", "publish", "--sizes", "64"]);
    assert!(out.status.success(), "{out:?}");
    let users = mmf_core::Channel::open(location(&name)).unwrap();
    assert_eq!(users.read_raw().unwrap().1, b"user data");
    drop(users);
    let _ = std::fs::remove_dir_all(&dir);
}

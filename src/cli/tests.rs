use super::*;

#[test]
fn lists_parse_or_name_the_flag() {
    assert_eq!(parse_list("contexts", "128, 512").unwrap(), vec![128, 512]);
    for bad in ["", "0", "12,x"] {
        let e = parse_list("contexts", bad).unwrap_err().to_string();
        assert!(e.contains("--contexts"), "{e}");
    }
}

#[test]
fn seeds_are_a_list_or_ranges_of_distinct_integers() {
    assert_eq!(parse_seeds("3,1").unwrap(), [3, 1]);
    assert_eq!(parse_seeds("1-3, 7").unwrap(), [1, 2, 3, 7]);
    for bad in ["", "1,1", "1-3,2", "3-1", "x", "1-", "0-20000"] {
        let e = parse_seeds(bad).unwrap_err().to_string();
        assert!(e.contains("--seeds"), "{bad}: {e}");
    }
}

#[test]
fn errors_show_options_as_flags_and_say_which_flag_helps() {
    let bad =
        anyhow::Error::new(InvalidOption::new("top_p", 1.5, "0 < p <= 1")).context("generating");
    assert_eq!(
        explain(&bad),
        "generating: --top-p 1.5: accepted: 0 < p <= 1"
    );
    let held = anyhow::Error::new(FolderError::HoldsRun {
        dir: "artifacts/x".into(),
        step: 20,
    });
    assert!(explain(&held).ends_with("use --resume to continue it or --force to start over"));
    let plain = anyhow::anyhow!("a: b");
    assert_eq!(explain(&plain), "a: b");
    // A memory refusal names the micro-batch that fits as the file's field; the command
    // line adds its flag, and none where nothing smaller fits.
    let too_large = |fits| TooLarge {
        what: "attention scores".into(),
        bytes: 200 << 20,
        cap: 100 << 20,
        device: "wgpu: test".into(),
        rows: 32,
        fits,
    };
    let fits = anyhow::Error::new(too_large(Some((16, 96 << 20)))).context("x.ron");
    let text = explain(&fits);
    assert!(
        text.contains("train.micro_batch 16 would fit")
            && text.ends_with("(on the command line: --micro-batch 16)"),
        "{text}"
    );
    assert!(!explain(&anyhow::Error::new(too_large(None))).contains("--micro-batch"));
}

#[test]
fn resume_and_force_are_refused_together() {
    let err = Cli::try_parse_from(["mla-lab", "x.ron", "--resume", "--force"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    assert!(Cli::try_parse_from(["mla-lab", "train", "x.ron", "--force", "--resume"]).is_err());
    assert!(Cli::try_parse_from(["mla-lab", "train", "x.ron", "--force"]).is_ok());
}

#[test]
fn every_backend_is_offered_and_parsed() {
    for b in BackendChoice::ALL {
        let cli = Cli::try_parse_from(["mla-lab", "--backend", b.name(), "x.ron"]).unwrap();
        assert_eq!(cli.backend, b);
    }
    assert!(Cli::try_parse_from(["mla-lab", "--backend", "tpu", "x.ron"]).is_err());
}
